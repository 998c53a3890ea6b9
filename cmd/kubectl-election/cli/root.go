// Package cli is the kubectl election plugin: its commands, how they read
// elections from the API server, and how they print them. Command
// kubectl-election runs it; a test can run it in-process through Main or
// NewCommand.
package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/k8sleaderelection/k8sleaderelection/internal/fencepolicy"
)

// env is what every command uses: the streams, kubectl's connection flags,
// and how to build a client and read the clock (replaced in tests).
type env struct {
	streams genericiooptions.IOStreams
	flags   *genericclioptions.ConfigFlags
	client  func() (kubernetes.Interface, error)
	now     func() time.Time
}

// NewCommand returns the root command, "kubectl election", with kubectl's
// connection flags (--kubeconfig, --context, -n, --as and the rest).
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	e := &env{streams: streams, flags: genericclioptions.NewConfigFlags(true), now: time.Now}
	e.client = func() (kubernetes.Interface, error) {
		config, err := e.flags.ToRESTConfig()
		if err != nil {
			return nil, err
		}
		// v1 Endpoints are deprecated and the server says so on every
		// request; reading old lock records is what we want them for.
		config.WarningHandlerWithContext = endpointsWarningsDropped{rest.WarningLogger{}}
		return kubernetes.NewForConfig(config)
	}
	return e.command()
}

// Main runs the plugin with args (without the program name) and returns its
// exit code: 0, or 1 after a one-line error on stderr (fence-policy's own
// exit code, 2, for its bad flags).
func Main(args []string, streams genericiooptions.IOStreams) int {
	return MainContext(context.Background(), args, streams)
}

// MainContext is Main, and watch ends when ctx is done.
func MainContext(ctx context.Context, args []string, streams genericiooptions.IOStreams) int {
	return run(ctx, NewCommand(streams), args, streams)
}

// run executes root with args and turns its error into an exit code.
func run(ctx context.Context, root *cobra.Command, args []string, streams genericiooptions.IOStreams) int {
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var printed errSilentExit
	if errors.As(err, &printed) {
		return int(printed)
	}
	if err != nil {
		fmt.Fprintln(streams.ErrOut, "error:", strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
	return 0
}

func (e *env) command() *cobra.Command {
	root := &cobra.Command{
		// kubectl runs the binary kubectl-election; errors and help
		// name it as the user typed it.
		Use:         "kubectl-election",
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl election"},
		Short:       "Show the leader elections of a cluster, and move their leadership",
		Long: `kubectl election shows leader elections: Leases, and the ConfigMap and
Endpoints records (annotation control-plane.alpha.kubernetes.io/leader) that
k8sleaderelection, client-go's and Istio's electors write. For each it shows
the holder, its priority key, the term, the time left on the lease, a pending
handoff and the known candidates. step-down and handoff ask a holder running
k8sleaderelection to give leadership up, with zero overlap.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(e.streams.In)
	root.SetOut(e.streams.Out)
	root.SetErr(e.streams.ErrOut)
	e.flags.AddFlags(root.PersistentFlags())
	root.AddCommand(e.listCommand(), e.describeCommand(), e.watchCommand(), e.stepDownCommand(), e.handoffCommand(), e.fencePolicyCommand())
	return root
}

// scope is the namespace a command reads: "" for all namespaces.
func (e *env) scope(cmd *cobra.Command, allNamespaces bool) (string, error) {
	if allNamespaces {
		if cmd.Flags().Changed("namespace") {
			return "", errors.New("--all-namespaces and --namespace conflict: give one")
		}
		return "", nil
	}
	ns, _, err := e.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("namespace: %w", err)
	}
	return ns, nil
}

func (e *env) reader() (reader, error) {
	client, err := e.client()
	if err != nil {
		return reader{}, err
	}
	return reader{client: client, now: e.now, warn: e.streams.ErrOut}, nil
}

func (e *env) listCommand() *cobra.Command {
	var (
		all    bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the elections in a namespace (-A: in all)",
		Long: `List every election in the namespace: every Lease (a Lease without a
holder is a free election), and every ConfigMap and Endpoints that carries a
leader record. LEFT is renewTime + leaseDurationSeconds - now: the holder's
clock against this machine's, so clock skew shifts it; electors judge expiry
by how long the record has gone unchanged on their own clocks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, outputWide, outputJSON, outputYAML); err != nil {
				return err
			}
			ns, err := e.scope(cmd, all)
			if err != nil {
				return err
			}
			r, err := e.reader()
			if err != nil {
				return err
			}
			elections, err := r.list(cmd.Context(), ns)
			if err != nil {
				return err
			}
			return printList(e.streams.Out, elections, output, all, e.now())
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list the elections of every namespace")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: wide, json or yaml")
	return cmd
}

func (e *env) describeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME|KIND/NAME",
		Short: "Show one election in full, with its lock object's annotations",
		Long: `Show one election in full. NAME alone looks for a Lease, a ConfigMap and
an Endpoints of that name and shows each that holds an election (a migration
between lock kinds keeps two); KIND/NAME (lease/x, configmap/x, endpoints/x)
looks for one.`,
		Args: exactlyOne("describe", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, err := e.scope(cmd, false)
			if err != nil {
				return err
			}
			r, err := e.reader()
			if err != nil {
				return err
			}
			elections, err := r.get(cmd.Context(), ns, args[0])
			if err != nil {
				return err
			}
			for i, el := range elections {
				if i > 0 {
					fmt.Fprintln(e.streams.Out)
				}
				if err := describe(e.streams.Out, el, e.now()); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func (e *env) fencePolicyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "fence-policy -namespace NS -lease NAME -resources LIST [-mode MODE] [-name NAME] [-writers USERS]",
		Short: "Print the admission policy that refuses a deposed leader's writes (as cmd/fence-policy)",
		// The flags are fence-policy's own, parsed by the code
		// cmd/fence-policy runs, so that the two cannot drift apart.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := fencepolicy.Main("kubectl election fence-policy", args, e.streams.Out, e.streams.ErrOut); code != 0 {
				return errSilentExit(code)
			}
			return nil
		},
	}
}

// errSilentExit is a failure whose message was already printed.
type errSilentExit int

func (e errSilentExit) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func checkOutput(output string, allowed ...string) error {
	if output == "" {
		return nil
	}
	for _, a := range allowed {
		if output == a {
			return nil
		}
	}
	return fmt.Errorf("--output %q: must be one of %s", output, strings.Join(allowed, ", "))
}

// exactlyOne refuses anything but one argument, naming what was expected.
func exactlyOne(command, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%s takes one %s, got %d arguments %q", command, what, len(args), args)
		}
		return nil
	}
}

// endpointsWarningsDropped passes on the API server's warnings except the
// deprecation of v1 Endpoints.
type endpointsWarningsDropped struct{ rest.WarningHandlerWithContext }

func (h endpointsWarningsDropped) HandleWarningHeaderWithContext(ctx context.Context, code int, agent, message string) {
	if strings.Contains(message, "v1 Endpoints is deprecated") {
		return
	}
	h.WarningHandlerWithContext.HandleWarningHeaderWithContext(ctx, code, agent, message)
}
