package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"
)

// Output formats of list (-o).
const (
	outputTable = ""
	outputWide  = "wide"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

// List is what list prints with -o json or -o yaml.
type List struct {
	Items []Election `json:"items"`
}

// printList writes elections in format.
func printList(w io.Writer, elections []Election, format string, allNamespaces bool, now time.Time) error {
	switch format {
	case outputJSON:
		out, err := json.MarshalIndent(List{Items: nonNil(elections)}, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", out)
		return err
	case outputYAML:
		out, err := yaml.Marshal(List{Items: nonNil(elections)})
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	}
	wide := format == outputWide
	tw := tabwriter.NewWriter(w, 3, 0, 3, ' ', 0)
	header := []string{"NAME", "KIND", "HOLDER", "KEY", "TERM", "LEFT", "HANDOFF"}
	if wide {
		header = append(header, "OFFER", "FENCE-TERM", "RENEWED", "CANDIDATES")
	}
	if allNamespaces {
		header = append([]string{"NAMESPACE"}, header...)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, e := range elections {
		row := []string{e.Name, e.Kind, holder(e), orNone(e.Key), term(e), left(e), handoff(e)}
		if wide {
			row = append(row, offer(e), orNone(e.FenceTerm), age(e.RenewTime.Time, now), orNone(strings.Join(e.Candidates, ",")))
		}
		if allNamespaces {
			row = append([]string{e.Namespace}, row...)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// nonNil makes an empty list print as [] rather than null.
func nonNil(es []Election) []Election {
	if es == nil {
		return []Election{}
	}
	return es
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func holder(e Election) string {
	if e.Invalid != "" {
		return "<invalid record>"
	}
	return orNone(e.Holder)
}

func term(e Election) string {
	if e.Invalid != "" {
		return "<unknown>"
	}
	return fmt.Sprint(e.Term)
}

// left is the time left on the lease as the table shows it.
func left(e Election) string {
	switch {
	case e.TimeLeft == nil:
		return "-"
	case e.TimeLeft.Duration <= 0:
		return "expired " + duration.HumanDuration(-e.TimeLeft.Duration) + " ago"
	}
	return duration.HumanDuration(e.TimeLeft.Duration)
}

func handoff(e Election) string {
	h := e.Handoff
	if h == nil {
		return "-"
	}
	s := fmt.Sprintf("to %s (key %s)", h.To, orNone(h.ToKey))
	switch {
	case h.Deadline != nil:
		s += " by " + h.Deadline.Format(time.TimeOnly)
	case h.WithinSeconds > 0:
		s += fmt.Sprintf(" within %ds of the request", h.WithinSeconds)
	}
	return s
}

func offer(e Election) string {
	if e.HandoffOffer == nil {
		return "-"
	}
	return fmt.Sprintf("within %ds", e.HandoffOffer.WithinSeconds)
}

// age is how long ago t was, on this machine's clock.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "<none>"
	}
	return duration.HumanDuration(now.Sub(t)) + " ago"
}

// describe writes one election for a person to read.
func describe(w io.Writer, e Election, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	field := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t%s\n", name, fmt.Sprintf(format, args...))
	}
	field("Name", "%s", e.Name)
	field("Namespace", "%s", e.Namespace)
	field("Kind", "%s (%s)", e.Kind, resources[e.Kind])
	if e.Invalid != "" {
		field("Record", "cannot be decoded: %s", e.Invalid)
	} else {
		field("Holder", "%s", orNone(e.Holder))
		field("Key", "%s", orNone(e.Key))
		t := fmt.Sprint(e.Term)
		if e.FenceTerm != "" {
			t += fmt.Sprintf(" (fenced writes carry %s)", e.FenceTerm)
		}
		field("Term", "%s", t)
		field("Lease duration", "%ds", e.LeaseDurationSeconds)
		field("Acquired", "%s", stamp(e.AcquireTime.Time, now))
		field("Renewed", "%s", stamp(e.RenewTime.Time, now))
		field("Time left", "%s (renewTime + leaseDurationSeconds - now: the holder's clock against this machine's; electors time expiry on their own clocks)", left(e))
		if e.Strategy != "" || e.PreferredHolder != "" {
			field("Strategy", "%s", orNone(e.Strategy))
			field("Preferred holder", "%s", orNone(e.PreferredHolder))
		}
		if e.HandoffOffer != nil {
			field("Handoff offer", "the holder hands over within %ds of a request from a candidate that outranks it", e.HandoffOffer.WithinSeconds)
		} else {
			field("Handoff offer", "none (a candidate that outranks the holder takes the lock)")
		}
		if e.Handoff != nil {
			field("Handoff", "pending: %s; if the holder has not handed over by then, %s takes the lock", handoff(e), e.Handoff.To)
		} else {
			field("Handoff", "none pending")
		}
		if sd := e.StepDown; sd != nil {
			to := "the best other candidate (one that asked, or the first to take the released lock)"
			if sd.To != "" {
				to = sd.To
			}
			field("Step-down", "requested at %s: hand over to %s, then stay out for %ds; expires at %s", sd.RequestedAt, to, sd.ForSeconds, sd.ExpiresAt)
		}
		if out := e.SteppedDown; out != nil {
			field("Stepped down", "%s stays out of the election until %s", out.Identity, out.Until.UTC().Format(time.RFC3339))
		}
	}
	if e.Kind == kindLease {
		field("Candidates", "%s", orNone(strings.Join(e.Candidates, ", ")))
	}
	keys := slices.Sorted(maps.Keys(e.Annotations))
	if len(keys) == 0 {
		field("Annotations", "<none>")
	} else {
		fmt.Fprintln(tw, "Annotations:\t")
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s=%s\n", k, e.Annotations[k])
		}
	}
	return tw.Flush()
}

// stamp is a record time and how long ago it was.
func stamp(t, now time.Time) string {
	if t.IsZero() {
		return "<none>"
	}
	return t.UTC().Format(time.RFC3339) + " (" + age(t, now) + ")"
}
