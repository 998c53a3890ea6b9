// Command run runs the robustness suite: random fault schedules, each
// reproducible by its seed, against candidate processes on an embedded
// control plane, each history checked for fencing, one leader, liveness
// and residue. Its last line is
// "robustness: S schedules, F faults (K kinds), V violations"; a failing
// seed writes a report directory.
//
//	go run ./robustness/run                       # seeds from 1 for -budget
//	go run ./robustness/run -seed 7               # one seed
//	go run ./robustness/run -seeds 1-200 -duration 45s
//	go run ./robustness/run -regression foreign-holder-waited-out
//	go run ./robustness/run -seeds 1-50 -kinds etcd-restart -dry-run
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/controlplane"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/robustness"
)

func main() {
	seed := flag.Uint64("seed", 0, "run this seed alone")
	seeds := flag.String("seeds", "", "run seeds A-B")
	duration := flag.Duration("duration", 40*time.Second, "length of each schedule")
	budget := flag.Duration("budget", 10*time.Minute, "without -seed or -seeds: run seeds from 1 until this much time has passed")
	reports := flag.String("reports", filepath.Join(os.TempDir(), "k8sleaderelection-robustness"), "where failing seeds write their reports, and the logs go")
	regression := flag.String("regression", "", "run the named regression schedule alone (see robustness.Regressions)")
	keep := flag.Bool("keep", false, "write every seed's report, not only those of failing seeds (and of client-go's with overlaps)")
	kindList := flag.String("kinds", "", "draw faults of these kinds alone (comma-separated); \"before-etcd\" draws the kinds schedules drew before the etcd faults, as they drew them")
	dryRun := flag.Bool("dry-run", false, "print each seed's schedule and run nothing")
	flag.Parse()
	kinds := robustness.Kinds
	switch *kindList {
	case "":
	case "before-etcd":
		kinds = robustness.KindsBeforeEtcd
	default:
		kinds = strings.Split(*kindList, ",")
		for _, k := range kinds {
			if !slices.Contains(robustness.Kinds, k) {
				fmt.Fprintf(os.Stderr, "-kinds %q: no fault kind %q (kinds: %s)\n", *kindList, k, strings.Join(robustness.Kinds, ","))
				os.Exit(2)
			}
		}
	}

	first, last := uint64(1), uint64(0)
	switch {
	case *seed != 0:
		first, last = *seed, *seed
	case *seeds != "":
		a, b, ok := strings.Cut(*seeds, "-")
		var errA, errB error
		first, errA = strconv.ParseUint(a, 10, 64)
		last, errB = strconv.ParseUint(b, 10, 64)
		if !ok || errA != nil || errB != nil || last < first {
			fmt.Fprintf(os.Stderr, "-seeds %q: want A-B with A <= B\n", *seeds)
			os.Exit(2)
		}
	}
	if min := robustness.DefaultTiming.LeaseDuration*2 + 3*time.Second; *duration < min {
		fmt.Fprintf(os.Stderr, "-duration %v: at least %v, to leave room for a fault and a quiet stretch\n", *duration, min)
		os.Exit(2)
	}
	if *dryRun {
		if last == 0 {
			last = first
		}
		for s := first; s <= last; s++ {
			sched := robustness.NewScheduleOf(s, *duration, robustness.DefaultTiming, kinds)
			fmt.Printf("seed %d (%s %s):\n", s, sched.Elector, strings.Join(sched.Electors, ","))
			for _, p := range sched.Faults {
				fmt.Printf("  %v\n", p)
			}
		}
		return
	}
	// Clients and the API server log through klog: into a file.
	if err := os.MkdirAll(*reports, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	logFile, err := os.Create(filepath.Join(*reports, "klog.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer logFile.Close()
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("logtostderr", "false")
	_ = klogFlags.Set("stderrthreshold", "FATAL")
	_ = klogFlags.Set("one_output", "true")
	klog.SetOutput(logFile)
	// The API server's etcd client writes its retries (many while etcd
	// restarts or is slowed) straight to standard error: send them to
	// the log too, and this program's own errors to the terminal.
	stderr, err := controlplane.RedirectStderr(logFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Stderr = stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	began := time.Now()
	suite, err := robustness.NewSuite(*reports, robustness.DefaultTiming)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer suite.Close()
	var totals robustness.Totals
	runOne := func(sched robustness.Schedule) {
		h, err := suite.Run(ctx, sched)
		if err != nil {
			fmt.Fprintf(os.Stderr, "seed %d: %v\n", sched.Seed, err)
			suite.Close()
			os.Exit(1)
		}
		vs, m := robustness.Check(h)
		totals.Add(h, vs, m)
		elector := sched.Elector
		if len(sched.Electors) > 0 {
			elector += " " + strings.Join(sched.Electors, ",")
		}
		fmt.Printf("seed %d (%s): %d faults, %d writes accepted, %d fenced, %d overlaps, %d violations\n",
			sched.Seed, elector, len(h.Faults), m.AcceptedWrites, m.FencedWrites, m.Overlaps, len(vs))
		for _, s := range m.Storms {
			fmt.Printf("  %v\n", s)
		}
		if len(m.UnpromisedOverlaps) > 0 {
			fmt.Printf("  overlaps where one leader is not promised: %v, longest %v\n", m.UnpromisedOverlaps, m.MaxUnpromisedOverlap)
		}
		// Other electors' overlaps in bounds are measured, not
		// violations: keep their reports to see which faults caused
		// them.
		if len(vs) > 0 || len(h.Gaps) > 0 || m.MaxOverlapInBounds > 0 || m.MaxUnpromisedOverlap > 0 || *keep {
			dir, err := robustness.WriteReport(*reports, sched, h, vs, m)
			if err != nil {
				fmt.Fprintln(os.Stderr, "write report:", err)
			}
			for _, v := range vs {
				fmt.Printf("  %s\n", strings.ReplaceAll(v.String(), "\n", "\n  "))
			}
			for _, g := range h.Gaps {
				fmt.Printf("  recording gap: %s\n", g)
			}
			fmt.Printf("  report: %s\n", dir)
		}
	}
	if *regression != "" {
		sched, ok := robustness.Regressions[*regression]
		if !ok {
			fmt.Fprintf(os.Stderr, "-regression %q: no such schedule\n", *regression)
			os.Exit(2)
		}
		runOne(sched)
	}
	for s := first; *regression == "" && (last == 0 || s <= last); s++ {
		if last == 0 && time.Since(began)+*duration+10*time.Second > *budget {
			break
		}
		if ctx.Err() != nil {
			break
		}
		runOne(robustness.NewScheduleOf(s, *duration, robustness.DefaultTiming, kinds))
	}
	fmt.Println(totals.Summary())
	fmt.Println(totals.Line())
	if totals.Violations > 0 {
		suite.Close()
		os.Exit(1)
	}
}
