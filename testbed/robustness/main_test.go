package robustness

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/klog/v2"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/controlplane"
)

// TestMain sends what the API server and the clients log through klog to
// a file beside the short slice's reports, out of the test output.
func TestMain(m *testing.M) {
	flag.Parse()
	dir := filepath.Join(os.TempDir(), "k8sleaderelection-robustness-short")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	logFile, err := os.Create(filepath.Join(dir, "klog.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("logtostderr", "false")
	_ = klogFlags.Set("stderrthreshold", "FATAL")
	_ = klogFlags.Set("one_output", "true")
	klog.SetOutput(logFile)
	// The API server's etcd client writes its retries (many while etcd
	// restarts or is slowed) straight to standard error: into the same
	// file (a crash's stack goes there too).
	if _, err := controlplane.RedirectStderr(logFile); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	klog.Flush()
	_ = logFile.Close()
	os.Exit(code)
}
