// Command demo runs a prioritized leader election the way a control plane
// with several revisions does, on a real kube-apiserver, and shows who leads
// as it happens.
//
// Three candidates compete for one Lease: "old", "canary" and "stable",
// where stable is the default revision and takes the lock from any other.
// The script starts them one by one (stable's arrival is a handoff: the
// leader stops its work, then hands the lock over, never two leaders),
// crashes the leader (the others wait out its lease), restarts it (another
// handoff), and at the end (after -duration, or on Ctrl-C) shuts everything
// down cleanly, releasing the lock once each leader's work has stopped. It
// prints each acquisition, handoff, step-down and release with a timestamp,
// then a summary, and draws the timeline as an SVG, with every stretch
// without a leader and every stretch with two marked.
//
// Each leader writes the demo's output ConfigMap, stamped with its term
// (package fence), and an admission policy makes the API server refuse a
// write made in a term the Lease has moved past: a while after each term
// ends, the deposed leader sends a late write in its old term, as a paused
// process would, and the demo prints the refusal.
//
// With -groups it shows package group instead: istiod's eleven elections
// over three replicas, then a fourth joins, one crashes and one leaves
// cleanly; it prints each move, the balance after each step, and who led
// each election when.
//
// Without -kubeconfig (or $KUBECONFIG) it starts its own etcd and
// kube-apiserver in this process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	le "github.com/k8sleaderelection/k8sleaderelection"
	"github.com/k8sleaderelection/k8sleaderelection/fence"
	rl "github.com/k8sleaderelection/k8sleaderelection/k8sresourcelock"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/controlplane"
)

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "cluster to use; empty starts an embedded etcd and kube-apiserver")
		duration   = flag.Duration("duration", 40*time.Second, "how long to run before shutting down (at least 30s for the whole script)")
		svgPath    = flag.String("svg", "demo-timeline.svg", "where to write the timeline picture")
		logDir     = flag.String("logs", filepath.Join(os.TempDir(), "k8sleaderelection-demo"), "directory for the control plane's and electors' logs")
		namespace  = flag.String("namespace", "k8sleaderelection-demo", "namespace of the lock")
		groups     = flag.Bool("groups", false, "instead, run istiod's eleven elections over its replicas with package group: a replica joins, one crashes, one leaves")
	)
	flag.Parse()
	if err := run(*kubeconfig, *duration, *svgPath, *logDir, *namespace, *groups, os.Stdout); err != nil {
		fmt.Fprintln(os.Stdout, "demo:", err)
		os.Exit(1)
	}
}

func run(kubeconfig string, duration time.Duration, svgPath, logDir, namespace string, groups bool, out io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(logDir, "klog.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	quietKlog(logFile)
	if _, err := controlplane.RedirectStderr(logFile); err != nil {
		return err
	}

	fmt.Fprintf(out, "Logs: %s\n", logDir)
	var cp *controlplane.ControlPlane
	if kubeconfig != "" {
		fmt.Fprintf(out, "Using the cluster of %s\n", kubeconfig)
		cp, err = controlplane.Connect(kubeconfig)
	} else {
		fmt.Fprintln(out, "Starting etcd and kube-apiserver in this process (the first build takes minutes; a start, seconds)...")
		cp, err = controlplane.Start(controlplane.Options{LogDir: logDir})
	}
	if err != nil {
		return err
	}
	defer cp.Close()
	config := cp.Config()
	if err := ensureNamespace(ctx, config, namespace); err != nil {
		return err
	}
	if groups {
		return runGroups(ctx, config, namespace, out)
	}
	const lockName = "demo-lock"
	admin := kubernetes.NewForConfigOrDie(config)
	// Each run starts from no lock, so that the script plays out the same.
	_ = admin.CoordinationV1().Leases(namespace).Delete(ctx, lockName, metav1.DeleteOptions{})

	fencing := true
	if err := setUpFencing(ctx, admin, namespace, lockName); err != nil {
		fencing = false
		fmt.Fprintf(out, "Fencing is off for this run: %v\n", err)
	} else {
		defer tearDownFencing(admin, lockName)
	}

	router := &metricsRouter{byName: map[string]*leaderMetrics{}}
	le.SetProvider(router)
	const defaultRevision = "stable"
	tl := newTimeline(out, defaultRevision)
	order := []string{"old", "canary", "stable"}
	keys := map[string]string{"old": "old", "canary": "canary", "stable": "stable"}
	candidates := map[string]*candidate{}
	for _, id := range order {
		metrics, err := newLeaderMetrics()
		if err != nil {
			return err
		}
		c := &candidate{
			id: id, key: keys[id], defaultRevision: defaultRevision, namespace: namespace, lock: lockName,
			config: config, admin: admin, tl: tl, keys: keys,
			watchdog: le.NewLeaderHealthzAdaptor(2 * time.Second), metrics: metrics, fencing: fencing,
		}
		if err := c.serve(); err != nil {
			return err
		}
		defer c.server.Close()
		router.add(c.electionName(), c.metrics)
		candidates[id] = c
	}
	tl.start = time.Now()
	fmt.Fprintf(out, "Lock: Lease %s/%s; lease %v, renew deadline %v, retry %v. stable is the default revision.\n\n",
		namespace, lockName, leaseDuration, renewDeadline, retryPeriod)
	for _, id := range order {
		fmt.Fprintf(out, "  %-7s key %-7q http://%s/healthz  http://%s/metrics\n", id, keys[id], candidates[id].addr, candidates[id].addr)
	}
	fmt.Fprintln(out)

	script := []struct {
		at   time.Duration
		what func()
	}{
		{0, func() { tl.say("old", "starts"); tl.mark("old", "start"); candidates["old"].start(ctx) }},
		{2 * time.Second, func() { tl.say("canary", "starts"); tl.mark("canary", "start"); candidates["canary"].start(ctx) }},
		{6 * time.Second, func() { tl.say("stable", "starts"); tl.mark("stable", "start"); candidates["stable"].start(ctx) }},
		{14 * time.Second, func() {
			tl.say("stable", "CRASHES (no release: the others must wait out the lease)")
			tl.mark("stable", "crash")
			candidates["stable"].stop(true)
		}},
		{24 * time.Second, func() { tl.say("stable", "restarts"); tl.mark("stable", "restart"); candidates["stable"].start(ctx) }},
	}
	deadline := tl.start.Add(duration)
	for _, step := range script {
		at := tl.start.Add(step.at)
		if at.After(deadline) || !sleepUntil(ctx, at) {
			break
		}
		step.what()
	}
	sleepUntil(ctx, deadline)
	if ctx.Err() != nil {
		fmt.Fprintln(out)
		tl.say("", "interrupted (press Ctrl-C again to quit without releasing)")
	}
	stop() // a second Ctrl-C ends the process at once

	end := time.Now()
	tl.say("", "shutting down: every candidate stops and releases the lock")
	for _, id := range order {
		c := candidates[id]
		if c.cancel == nil {
			continue
		}
		c.stop(false)
	}
	lease, err := admin.CoordinationV1().Leases(namespace).Get(context.Background(), lockName, metav1.GetOptions{})
	transitions := -1
	if err == nil {
		record := rl.LeaseToLeaderElectionRecord(lease)
		transitions = record.LeaderTransitions
		if record.HolderIdentity == "" {
			tl.say("", "the lock is released: no holder, lease %ds", record.LeaseDurationSeconds)
		}
	}
	tl.summarize(end).write(out, order, transitions)

	f, err := os.Create(svgPath)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tl.writeSVG(f, order, keys, end); err != nil {
		return err
	}
	abs, _ := filepath.Abs(svgPath)
	fmt.Fprintf(out, "\nTimeline: %s (open it in a browser)\n", abs)
	return nil
}

// sleepUntil waits until t; false if ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// ensureNamespace creates the namespace unless it exists.
func ensureNamespace(ctx context.Context, config *rest.Config, namespace string) error {
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	return nil
}

// quietKlog sends every klog line (electors, clients, the API server) to w.
func quietKlog(w io.Writer) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	_ = fs.Set("v", "2")
	_ = fs.Set("one_output", "true") // each line once, in one file
	klog.SetOutput(w)
}

// setUpFencing installs the admission policy that refuses writes to the
// namespace's ConfigMaps made in a term the Lease has moved past, and waits
// until the API server enforces it.
func setUpFencing(ctx context.Context, admin kubernetes.Interface, namespace, lockName string) error {
	policy, binding, err := fence.Policy(fence.PolicyOptions{Namespace: namespace, Lease: lockName, Resources: []fence.Resource{{Resource: "configmaps"}}})
	if err != nil {
		return err
	}
	tearDownFencing(admin, lockName) // a run before this one may have left them
	api := admin.AdmissionregistrationV1()
	if _, err := api.ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create the fencing policy: %w", err)
	}
	if _, err := api.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create the fencing policy's binding: %w", err)
	}
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "fencing-probe", Namespace: namespace,
		Annotations: map[string]string{fence.TermAnnotation: "999999/nobody"}}}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, err := admin.CoreV1().ConfigMaps(namespace).Create(ctx, probe, metav1.CreateOptions{})
		if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
			return nil
		}
		if err == nil {
			_ = admin.CoreV1().ConfigMaps(namespace).Delete(ctx, probe.Name, metav1.DeleteOptions{})
		}
	}
	return errors.New("the API server did not enforce the fencing policy within 20s")
}

// tearDownFencing removes the policy and binding setUpFencing made.
func tearDownFencing(admin kubernetes.Interface, lockName string) {
	name := "fence-" + lockName
	api := admin.AdmissionregistrationV1()
	_ = api.ValidatingAdmissionPolicyBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
	_ = api.ValidatingAdmissionPolicies().Delete(context.Background(), name, metav1.DeleteOptions{})
}
