// Package fencepolicy is the fence-policy command: its flags, and the
// ValidatingAdmissionPolicy and binding it prints for package fence. Both
// cmd/fence-policy and "kubectl election fence-policy" run it, so that the
// two take the same flags and print the same YAML.
package fencepolicy

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/k8sleaderelection/k8sleaderelection/fence"
)

// Main runs the command named name with args (without the command name),
// writing the policy to stdout and problems to stderr, and returns the exit
// code: 0 on success or -h, 2 for bad flags or options.
func Main(name string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := fence.PolicyOptions{}
	resources := fs.String("resources", "", "resources to fence, as kubectl names them: configmaps,deployments.apps (subresources such as status cannot be fenced)")
	fs.StringVar(&opts.Namespace, "namespace", "", "namespace of the Lease and of the fenced objects")
	fs.StringVar(&opts.Lease, "lease", "", "name of the Lease the leader holds")
	fs.StringVar(&opts.Name, "name", "", "name of the policy and binding (default fence-<lease>)")
	writers := fs.String("writers", "", "comma-separated users whose writes alone are checked, such as system:serviceaccount:NS:NAME (default: every user)")
	mode := fs.String("mode", string(fence.StampedOnly), "StampedOnly: check writes that carry a term; EveryWrite: refuse any write without the current term")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		// Flags after a stray argument are not parsed: refuse rather
		// than print a policy without them.
		fmt.Fprintf(stderr, "%s: unexpected arguments %q (every setting is a flag: -namespace, -lease, -resources, -mode, -name)\n", name, fs.Args())
		return 2
	}
	opts.Mode = fence.Mode(*mode)
	for _, w := range strings.Split(*writers, ",") {
		if w = strings.TrimSpace(w); w != "" {
			opts.Writers = append(opts.Writers, w)
		}
	}
	if err := run(opts, *resources, stdout); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	return 0
}

func run(opts fence.PolicyOptions, resources string, stdout io.Writer) error {
	parsed, err := fence.ParseResources(resources)
	if err != nil {
		return err
	}
	opts.Resources = parsed
	out, err := fence.YAML(opts)
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}
