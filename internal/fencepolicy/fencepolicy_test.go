package fencepolicy

import (
	"bytes"
	"strings"
	"testing"

	"github.com/k8sleaderelection/k8sleaderelection/fence"
)

// TestMainPrintsThePolicyOfItsFlags: the command prints exactly fence.YAML of
// the options its flags spell.
func TestMainPrintsThePolicyOfItsFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Main("fence-policy", []string{"-namespace", "ns", "-lease", "l", "-resources", "configmaps,deployments.apps", "-mode", "EveryWrite", "-writers", "a, b"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q; want 0", code, stderr.String())
	}
	want, err := fence.YAML(fence.PolicyOptions{
		Namespace: "ns", Lease: "l", Mode: fence.EveryWrite, Writers: []string{"a", "b"},
		Resources: []fence.Resource{{Resource: "configmaps"}, {Group: "apps", Resource: "deployments"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if stdout.String() != string(want) {
		t.Fatalf("printed\n%s\nwant\n%s", stdout.String(), want)
	}
}

// TestMainRefusesBadInput: a stray argument, an unknown flag and invalid
// options each exit 2 with a message, and print no policy.
func TestMainRefusesBadInput(t *testing.T) {
	for name, args := range map[string][]string{
		"stray argument": {"-namespace", "ns", "-lease", "l", "-resources", "configmaps", "extra", "-mode", "EveryWrite"},
		"unknown flag":   {"-namespace", "ns", "-lease", "l", "-resources", "configmaps", "-bogus"},
		"no resources":   {"-namespace", "ns", "-lease", "l"},
		"bad mode":       {"-namespace", "ns", "-lease", "l", "-resources", "configmaps", "-mode", "Sometimes"},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Main("fence-policy", args, &stdout, &stderr); code != 2 {
				t.Fatalf("exit code %d; want 2", code)
			}
			if stdout.Len() != 0 || !strings.Contains(stderr.String(), "fence-policy") && !strings.Contains(stderr.String(), "flag") {
				t.Fatalf("stdout %q, stderr %q: want no policy and a message", stdout.String(), stderr.String())
			}
		})
	}
}
