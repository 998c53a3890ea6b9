// Command fence-policy prints the ValidatingAdmissionPolicy and binding that
// make the API server refuse a deposed leader's writes (package fence), for
// kubectl apply -f -. "kubectl election fence-policy" is the same command.
//
//	go run github.com/k8sleaderelection/k8sleaderelection/cmd/fence-policy \
//	    -namespace istio-system -lease my-controller -resources configmaps,deployments.apps
//
// The policy compares a write's stamp with the Lease's UID, leaseTransitions
// and holder. A policy printed by a version whose terms had no UID refuses
// the stamps of this one, and this one refuses theirs: when upgrading, apply
// the policy this version prints and roll out the controller with it (see
// package fence).
package main

import (
	"os"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fencepolicy"
)

func main() {
	os.Exit(fencepolicy.Main("fence-policy", os.Args[1:], os.Stdout, os.Stderr))
}
