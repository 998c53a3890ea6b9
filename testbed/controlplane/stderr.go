package controlplane

import (
	"fmt"
	"os"
	"syscall"
)

// RedirectStderr points file descriptor 2 at log and returns a file for the
// terminal it pointed at before. The API server's etcd client and gRPC write
// straight to standard error, past klog; a program that embeds the control
// plane (the demo, the benchmarks) keeps its own output readable by writing
// to the returned file instead.
func RedirectStderr(log *os.File) (*os.File, error) {
	saved, err := syscall.Dup(2)
	if err != nil {
		return nil, fmt.Errorf("save standard error: %w", err)
	}
	if err := syscall.Dup3(int(log.Fd()), 2, 0); err != nil {
		_ = syscall.Close(saved)
		return nil, fmt.Errorf("redirect standard error to %s: %w", log.Name(), err)
	}
	return os.NewFile(uintptr(saved), "/dev/stderr"), nil
}
