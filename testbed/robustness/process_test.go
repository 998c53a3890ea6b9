package robustness

import (
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/robustness/event"
)

// TestReadingACandidateMarksAGapWhenItsReportIsCutOff: a line too long to
// read (an exit report carrying a megabyte of stacks) ends the reading of
// the candidate's report; what it reported then is lost, which is a gap,
// and the rest of its output is still drained so that it does not block on
// a full pipe.
func TestReadingACandidateMarksAGapWhenItsReportIsCutOff(t *testing.T) {
	r := &run{}
	long := `{"kind":"exit","message":"` + strings.Repeat("x", 2<<20) + `"}` + "\n"
	rest := `{"kind":"end","id":"c1","pid":7}` + "\n" + strings.Repeat(" ", 1<<20)
	out := strings.NewReader(`{"kind":"start","id":"c1","pid":7}` + "\n" + long + rest)
	r.read("c1", out)
	if !slices.ContainsFunc(r.h.Gaps, func(g string) bool { return strings.Contains(g, "candidate c1: its report was cut off") }) {
		t.Fatalf("gaps %q; want one for the report cut off by a line too long", r.h.Gaps)
	}
	if len(r.h.Events) != 1 || r.h.Events[0].Kind != event.Start {
		t.Fatalf("events %+v; want the start before the long line", r.h.Events)
	}
	if n, _ := io.Copy(io.Discard, out); n != 0 {
		t.Fatalf("%d bytes of the candidate's output were left unread: it would block on a full pipe", n)
	}
}
