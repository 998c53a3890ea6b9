package group

import (
	"flag"
	"io"
	"os"
	"testing"

	"go.uber.org/goleak"
	"k8s.io/klog/v2"
)

func TestMain(m *testing.M) {
	// Every move is logged; thousands of virtual seconds of them would bury
	// a failure. KLOG_TESTS=1 keeps them.
	if os.Getenv("KLOG_TESTS") == "" {
		flags := flag.NewFlagSet("klog", flag.PanicOnError)
		klog.InitFlags(flags)
		_ = flags.Set("logtostderr", "false")
		_ = flags.Set("stderrthreshold", "FATAL")
		klog.SetOutput(io.Discard)
	}
	goleak.VerifyTestMain(m)
}
