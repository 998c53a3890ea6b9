// Command fence-policy prints the ValidatingAdmissionPolicy and binding that
// make the API server refuse a deposed leader's writes (package fence), for
// kubectl apply -f -.
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
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/k8sleaderelection/k8sleaderelection/fence"
)

func main() {
	opts := fence.PolicyOptions{}
	resources := flag.String("resources", "", "resources to fence, as kubectl names them: configmaps,deployments.apps (subresources such as status cannot be fenced)")
	flag.StringVar(&opts.Namespace, "namespace", "", "namespace of the Lease and of the fenced objects")
	flag.StringVar(&opts.Lease, "lease", "", "name of the Lease the leader holds")
	flag.StringVar(&opts.Name, "name", "", "name of the policy and binding (default fence-<lease>)")
	writers := flag.String("writers", "", "comma-separated users whose writes alone are checked, such as system:serviceaccount:NS:NAME (default: every user)")
	mode := flag.String("mode", string(fence.StampedOnly), "StampedOnly: check writes that carry a term; EveryWrite: refuse any write without the current term")
	flag.Parse()
	if flag.NArg() > 0 {
		// Flags after a stray argument are not parsed: refuse rather
		// than print a policy without them.
		fmt.Fprintf(os.Stderr, "fence-policy: unexpected arguments %q (every setting is a flag: -namespace, -lease, -resources, -mode, -name)\n", flag.Args())
		os.Exit(2)
	}
	opts.Mode = fence.Mode(*mode)
	for _, w := range strings.Split(*writers, ",") {
		if w = strings.TrimSpace(w); w != "" {
			opts.Writers = append(opts.Writers, w)
		}
	}
	if err := run(opts, *resources); err != nil {
		fmt.Fprintln(os.Stderr, "fence-policy:", err)
		os.Exit(2)
	}
}

func run(opts fence.PolicyOptions, resources string) error {
	parsed, err := fence.ParseResources(resources)
	if err != nil {
		return err
	}
	opts.Resources = parsed
	out, err := fence.YAML(opts)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
