// Command kubectl-election is a kubectl plugin that shows leader elections:
// Leases, and the ConfigMap and Endpoints records that k8sleaderelection,
// client-go's and Istio's electors write, with the holder, its priority key,
// the term, the time left, a pending handoff and the known candidates.
//
//	kubectl election list [-A] [-o wide|json|yaml]
//	kubectl election describe NAME|KIND/NAME
//	kubectl election watch [NAME|KIND/NAME] [-A]
//	kubectl election fence-policy -namespace NS -lease NAME -resources LIST
//
// Install it from a checkout (its go.mod points at the library beside it):
//
//	cd cmd/kubectl-election && go install .
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/k8sleaderelection/k8sleaderelection/cmd/kubectl-election/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.MainContext(ctx, os.Args[1:], genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	stop()
	os.Exit(code)
}
