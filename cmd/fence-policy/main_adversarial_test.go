package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets a test run the command itself: the test binary, started
// again with FENCE_POLICY_MAIN set, is fence-policy.
func TestMain(m *testing.M) {
	if os.Getenv("FENCE_POLICY_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestAdversarialStrayArgumentIsAnError: flag parsing stops at the first
// argument that is not a flag, so in
//
//	fence-policy -namespace ns -lease l -resources configmaps extra -mode EveryWrite
//
// "-mode EveryWrite" is silently ignored and the command prints a
// StampedOnly policy and exits 0: the user asked to refuse every unstamped
// write and got a policy that lets them all through. Arguments left over
// after the flags should be an error (exit 2).
func TestAdversarialStrayArgumentIsAnError(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-namespace", "ns", "-lease", "l", "-resources", "configmaps", "extra", "-mode", "EveryWrite")
	cmd.Env = append(os.Environ(), "FENCE_POLICY_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("fence-policy did not exit within 30s")
	}
	if err == nil {
		mode := "EveryWrite"
		if strings.Contains(stdout.String(), `variables.stamp == "" || variables.stamp == variables.term`) {
			mode = "StampedOnly"
		}
		t.Fatalf("fence-policy with a stray argument before -mode EveryWrite exited 0 and printed a %s policy; want exit 2 naming the stray argument %q", mode, "extra")
	}
}
