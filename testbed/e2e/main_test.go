package e2e

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/klog/v2"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/controlplane"
)

// cp is the control plane every test in this package runs against: an
// embedded etcd and kube-apiserver, or the cluster of $KUBECONFIG.
var cp *controlplane.ControlPlane

func TestMain(m *testing.M) {
	flag.Parse()
	logDir := os.Getenv("E2E_LOG_DIR")
	if logDir == "" {
		logDir = filepath.Join(os.TempDir(), "k8sleaderelection-e2e")
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Electors, clients and the API server all log through klog; keep it
	// out of the test output and in a file a failure can point to.
	logFile, err := os.Create(filepath.Join(logDir, "klog.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	if os.Getenv("E2E_V") == "" {
		_ = os.Setenv("E2E_V", "2")
	}
	_ = klogFlags.Set("logtostderr", "false")
	_ = klogFlags.Set("stderrthreshold", "FATAL")
	_ = klogFlags.Set("v", os.Getenv("E2E_V"))
	// Each line once, in one file: no per-severity copies or files.
	_ = klogFlags.Set("one_output", "true")
	klog.SetOutput(logFile)

	cp, err = controlplane.StartOrConnect(controlplane.Options{LogDir: logDir, APIServerFlags: coordinatedAPIFlags})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start control plane:", err)
		os.Exit(1)
	}
	code := m.Run()
	writeFigures(os.Stdout)
	if f, err := os.Create(filepath.Join(logDir, "figures.txt")); err == nil {
		writeFigures(f)
		_ = f.Close()
	}
	cp.Close()
	klog.Flush()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "logs: %s (klog.log, controlplane.log)\n", logDir)
	}
	os.Exit(code)
}
