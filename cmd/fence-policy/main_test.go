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
