// Command fence-policy prints the ValidatingAdmissionPolicy and binding that
// make the API server refuse a deposed leader's writes (package fence), for
// kubectl apply -f -. "kubectl election fence-policy" is the same command.
//
//	go run github.com/k8sleaderelection/k8sleaderelection/cmd/fence-policy \
//	    -namespace istio-system -lease my-controller -resources configmaps,deployments.apps
package main

import (
	"os"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fencepolicy"
)

func main() {
	os.Exit(fencepolicy.Main("fence-policy", os.Args[1:], os.Stdout, os.Stderr))
}
