package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPrintedPolicyComparesTheLeaseUID: the policy the command prints
// compares stamps with the Lease's UID as well as its transitions and
// holder, as the terms of this version are written; one without it would
// refuse every stamp this version makes.
func TestPrintedPolicyComparesTheLeaseUID(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-namespace", "ns", "-lease", "l", "-resources", "configmaps")
	cmd.Env = append(os.Environ(), "FENCE_POLICY_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("fence-policy: %v: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("fence-policy did not exit within 30s")
	}
	for _, want := range []string{"params.metadata.uid", `variables.uid + "/" + string(`, "k8sleaderelection.github.io/term"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the printed policy lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestMain lets a test run the command itself: the test binary, started
// again with FENCE_POLICY_MAIN set, is fence-policy.
func TestMain(m *testing.M) {
	if os.Getenv("FENCE_POLICY_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestStrayArgumentBeforeAFlagIsAnError: fence-policy exits 2 on an argument
// left over after the flags, instead of ignoring the flags that follow it.
//
// Found by an adversarial review of the first version, which it failed: flag
// parsing stops at the first argument that is not a flag, so in
//
//	fence-policy -namespace ns -lease l -resources configmaps extra -mode EveryWrite
//
// "-mode EveryWrite" is silently ignored and the command prints a
// StampedOnly policy and exits 0: the user asked to refuse every unstamped
// write and got a policy that lets them all through. Arguments left over
// after the flags should be an error (exit 2).
func TestStrayArgumentBeforeAFlagIsAnError(t *testing.T) {
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
