// Command bench measures this library against upstream client-go v0.37's
// tools/leaderelection, side by side in one run, and prints a table of
// ratios (ours / upstream):
//
//   - API load: requests per second by verb for a leader and a follower;
//   - failover after the leader releases the lock, and after it crashes;
//   - preemption, by handoff and by steal: how soon a higher key leads, and
//     how long the old leader leads on beside it (ours only: upstream has no
//     priority);
//   - one renewal against a fake clientset: ns, bytes and allocations;
//   - scale: many elections of three candidates in one process against one
//     API server: memory per election, requests per second (all, and the
//     followers'), and how many elections kept exactly one leader;
//   - cost: what the API server pays for elections run as replicas run
//     them (three processes, each a candidate in every election): requests
//     per second by verb, bytes of bodies, etcd's writes and reads, and the
//     CPU time of the API server and etcd, which run in this process, net of
//     the same windows with no elections;
//   - replicas: the largest number of elections three such processes keep
//     with exactly one leader each for a window, and how it breaks past it;
//   - groups: istiod's elections over replica processes, spread by package
//     group against one upstream elector per election in every replica:
//     balance, moves, time to balance after a join and a clean leave, a
//     crash's failover, overlaps, and writes per replica.
//
// It starts its own etcd and kube-apiserver unless -kubeconfig is given.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/controlplane"
)

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "cluster to use; empty starts an embedded etcd and kube-apiserver")
		runs       = flag.Int("runs", 11, "repetitions of each failover and preemption measurement")
		window     = flag.Duration("window", 30*time.Second, "how long the load and scale scenarios count requests")
		elections  = flag.Int("elections", 1000, "elections in the scale scenario (0 skips it)")
		logDir     = flag.String("logs", filepath.Join(os.TempDir(), "k8sleaderelection-bench"), "directory for logs")
		costN      = flag.Int("cost-elections", 100, "elections in the cost scenario, each with a candidate in each of 3 replica processes")
		costWin    = flag.Int("cost-windows", 5, "windows of -window the cost scenario takes the median of")
		repFrom    = flag.Int("replicas-from", 100, "elections in the replicas scenario's first trial; each next trial doubles them")
		repMax     = flag.Int("replicas-max", 3200, "elections past which the replicas scenario stops doubling")
		repWindow  = flag.Duration("replicas-window", time.Minute, "how long each replicas trial must keep exactly one leader per election (the issue's figure is 5m)")
		repStart   = flag.Duration("replicas-start", core.lease, "how long a replicas trial gives every election to be led; longer than a lease (the figure's rule) measures what N keeps one leader once led")
		groupsWin  = flag.Duration("groups-window", 10*time.Second, "how long the groups scenario counts requests in steady state")
		worker     = flag.Bool("scale-worker", false, "internal: run the scale scenario in this process")
		replica    = flag.Bool("replica-worker", false, "internal: run one replica of the cost or replicas scenario in this process")
		groupRep   = flag.Bool("group-worker", false, "internal: run one replica of the groups scenario in this process")
		replicaID  = flag.String("replica", "a", "internal: identity for -replica-worker")
		namespace  = flag.String("namespace", "", "internal: namespace for -replica-worker")
		libName    = flag.String("library", "ours", "internal: library for -scale-worker and -replica-worker")
		only       = flag.String("only", "", "comma-separated scenarios to run (renewal,load,failover,preemption,scale,fencing,cost,replicas,groups); empty runs all")
	)
	flag.Parse()
	if err := os.MkdirAll(*logDir, 0o755); err != nil {
		fail(err)
	}
	logFile, err := os.OpenFile(filepath.Join(*logDir, "klog.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fail(err)
	}
	quietKlog(logFile)
	if terminal, err = controlplane.RedirectStderr(logFile); err != nil {
		fail(err)
	}
	if *replica {
		if err := replicaWorker(*kubeconfig, *libName, *replicaID, *namespace, *elections); err != nil {
			fail(err)
		}
		return
	}
	if *groupRep {
		if err := groupWorker(*kubeconfig, *libName, *replicaID, *namespace); err != nil {
			fail(err)
		}
		return
	}
	if *worker {
		if err := scaleWorker(*kubeconfig, *libName, *elections, *window); err != nil {
			fail(err)
		}
		return
	}
	c := costConfig{elections: *costN, windows: *costWin}
	rs := replicaScaleConfig{from: *repFrom, max: *repMax, window: *repWindow, start: *repStart}
	if err := run(*kubeconfig, *runs, *window, *elections, c, rs, *groupsWin, *logDir, scenarioFilter(*only)); err != nil {
		fail(err)
	}
}

// terminal is where progress and errors go: standard error before the
// control plane's loggers took it over.
var terminal = os.Stderr

func fail(err error) {
	fmt.Fprintln(terminal, "bench:", err)
	os.Exit(1)
}

func progress(format string, args ...any) {
	fmt.Fprintf(terminal, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// scenarioFilter reports whether a scenario was asked for.
func scenarioFilter(only string) func(string) bool {
	if only == "" {
		return func(string) bool { return true }
	}
	asked := strings.Split(only, ",")
	return func(name string) bool { return slices.Contains(asked, name) }
}

// costConfig sizes the cost scenario.
type costConfig struct{ elections, windows int }

func run(kubeconfig string, runs int, window time.Duration, elections int, cost costConfig, rs replicaScaleConfig, groupsWindow time.Duration, logDir string, want func(string) bool) error {
	ctx := context.Background()
	var r report
	// The renewal is measured first, before a control plane's goroutines
	// share the CPU and the allocator with it.
	if want("renewal") {
		progress("renewal against a fake clientset, %d renewals per library", renewals)
		o, u := measureRenewal(ours), measureRenewal(theirs)
		r.add("one renewal: CPU time (fake clientset)", "ns", float64(o.cpu.Nanoseconds()), float64(u.cpu.Nanoseconds()))
		r.add("one renewal: allocated bytes", "B", o.bytes, u.bytes)
		r.add("one renewal: allocations", "", o.allocs, u.allocs)
	}
	if !want("load") && !want("failover") && !want("preemption") && !want("scale") && !want("fencing") && !want("cost") && !want("replicas") && !want("groups") {
		r.write(os.Stdout, machine())
		return nil
	}
	var cp *controlplane.ControlPlane
	var err error
	if kubeconfig != "" {
		cp, err = controlplane.Connect(kubeconfig)
	} else {
		progress("starting etcd and kube-apiserver in this process (logs in %s)", logDir)
		cp, err = controlplane.Start(controlplane.Options{LogDir: logDir})
	}
	if err != nil {
		return err
	}
	defer cp.Close()
	config := cp.Config()
	config.QPS = -1
	e := &env{config: config, admin: kubernetes.NewForConfigOrDie(config)}
	defer e.cleanup()
	if want("load") {
		if err := loadRows(ctx, e, &r, window); err != nil {
			return err
		}
	}
	if want("failover") {
		if err := failoverRows(ctx, e, &r, runs); err != nil {
			return err
		}
	}
	if want("preemption") {
		if err := preemptionRows(ctx, e, &r, runs); err != nil {
			return err
		}
	}
	if want("fencing") {
		if err := fencingRows(ctx, e, &r); err != nil {
			return err
		}
	}
	if want("cost") && cost.elections > 0 {
		if err := costRows(ctx, cp, e, kubeconfig, &r, logDir, cost.elections, max(cost.windows, 1), window); err != nil {
			return err
		}
	}
	if want("scale") && elections > 0 {
		if err := scaleRows(cp, kubeconfig, &r, logDir, elections, window); err != nil {
			return err
		}
	}
	if want("replicas") && rs.from > 0 {
		if err := replicaScaleRows(ctx, cp, e, kubeconfig, &r, logDir, rs); err != nil {
			return err
		}
	}
	if want("groups") {
		if err := groupRows(ctx, cp, e, kubeconfig, &r, logDir, groupsWindow); err != nil {
			return err
		}
	}
	r.write(os.Stdout, machine())
	return nil
}

func loadRows(ctx context.Context, e *env, r *report, window time.Duration) error {
	progress("API load, %v per library", window)
	load := map[string]loadResult{}
	for _, lib := range []library{ours, theirs} {
		var err error
		if load[lib.name], err = measureLoad(ctx, e, lib, window); err != nil {
			return err
		}
	}
	total := func(counts map[string]float64) float64 {
		sum := 0.0
		for _, v := range counts {
			sum += v
		}
		return sum
	}
	r.add("follower requests/s: any verb, watches too", "/s", total(load[ours.name].follower), total(load[theirs.name].follower))
	for _, role := range []string{"leader", "follower"} {
		for _, method := range []string{"GET", "PUT", "POST"} {
			// GET and PUT always show, zero included: a leader's zero
			// reads are the point.
			get := func(l loadResult) float64 {
				if role == "leader" {
					return l.leader[method]
				}
				return l.follower[method]
			}
			o, u := get(load[ours.name]), get(load[theirs.name])
			if method == "POST" && o == 0 && u == 0 {
				continue
			}
			r.add(fmt.Sprintf("%s requests/s: %s", role, method), "/s", o, u)
		}
	}
	return nil
}

func failoverRows(ctx context.Context, e *env, r *report, runs int) error {
	for _, crash := range []bool{false, true} {
		name := map[bool]string{false: "after release", true: "after crash"}[crash]
		progress("failover %s, %d runs per library", name, runs)
		results := map[string][]time.Duration{}
		for _, lib := range []library{ours, theirs} {
			var err error
			if results[lib.name], err = measureFailover(ctx, e, lib, crash, runs); err != nil {
				return err
			}
			progress("  %s: %v", lib.name, roundAll(results[lib.name]))
		}
		om, ox := medianMax(results[ours.name])
		um, ux := medianMax(results[theirs.name])
		r.add("failover "+name+": median", "s", om, um)
		r.add("failover "+name+": max", "s", ox, ux)
	}
	return nil
}

func preemptionRows(ctx context.Context, e *env, r *report, runs int) error {
	const noPriority = "upstream client-go has no priority, so it cannot preempt; Istio's fork preempts but its old leader keeps leading until its RenewDeadline runs out."
	for _, steal := range []bool{false, true} {
		how := map[bool]string{false: "handoff", true: "steal"}[steal]
		progress("preemption by %s, %d runs", how, runs)
		toLead, overlap, err := measurePreemption(ctx, e, runs, steal)
		if err != nil {
			return err
		}
		progress("  time to lead %v, two leaders for %v", roundAll(toLead), roundAll(overlap))
		lm, lx := medianMax(toLead)
		r.addOursOnly("preemption by "+how+": time to lead, median", "s", lm, noPriority)
		r.addOursOnly("preemption by "+how+": time to lead, max", "s", lx, noPriority)
		vm, vx := medianMax(overlap)
		r.addOursOnly("preemption by "+how+": two leaders for, median", "s", vm, noPriority)
		r.addOursOnly("preemption by "+how+": two leaders for, max", "s", vx, noPriority)
	}
	return nil
}

func scaleRows(cp *controlplane.ControlPlane, kubeconfig string, r *report, logDir string, elections int, window time.Duration) error {
	path, err := replicaKubeconfig(cp, kubeconfig, logDir)
	if err != nil {
		return err
	}
	scale := map[string]scaleResult{}
	for _, lib := range []library{ours, oursPolling, theirs} {
		progress("scale: %d elections of %s", elections, lib.name)
		var err error
		if scale[lib.name], err = measureScale(path, logDir, lib, elections, window); err != nil {
			return err
		}
	}
	o, u := scale[ours.name], scale[theirs.name]
	r.add(fmt.Sprintf("scale (%d × 3): heap per election", elections), "B", o.BytesPerElection, u.BytesPerElection)
	r.add(fmt.Sprintf("scale (%d × 3): requests/s, all", elections), "/s", o.RequestsPerSecond, u.RequestsPerSecond)
	r.add(fmt.Sprintf("scale (%d × 3): requests/s, followers", elections), "/s", o.FollowerRequestsPerSecond, u.FollowerRequestsPerSecond)
	p := scale[oursPolling.name]
	r.add(fmt.Sprintf("scale (%d × 3), ours polling: heap per election", elections), "B", p.BytesPerElection, u.BytesPerElection)
	r.add(fmt.Sprintf("scale (%d × 3), ours polling: requests/s, followers", elections), "/s", p.FollowerRequestsPerSecond, u.FollowerRequestsPerSecond)
	r.add(fmt.Sprintf("scale (%d × 3): every one led after", elections), "s", o.SecondsToLeaders, u.SecondsToLeaders)
	r.add(fmt.Sprintf("scale (%d × 3): exactly one leader", elections), "", float64(o.OneLeader), float64(u.OneLeader))
	return nil
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond)
	}
	return out
}

// machine describes where the figures came from.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("Machine: %s, %d cores, %s %s/%s; timings lease %v / renew %v / retry %v (load, failover, preemption, groups), %v / %v / %v (scale).",
		cpu, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		fast.lease, fast.renew, fast.retry, core.lease, core.renew, core.retry)
}

// quietKlog sends every klog line to w instead of the terminal.
func quietKlog(w *os.File) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	_ = fs.Set("one_output", "true") // each line once, in one file
	klog.SetOutput(w)
}
