// Package event is what a robustness candidate reports to the harness: one
// JSON object per line on its stdout. It is a package of its own so that the
// candidate program does not link the harness (and its API server).
package event

import (
	"golang.org/x/sys/unix"
)

// Kinds of events.
const (
	// Ready: the candidate runs and is about to compete.
	Ready = "ready"
	// Start: OnStartedLeading was called; the candidate acts from now on.
	Start = "start"
	// End: OnStartedLeading returned; the candidate no longer acts.
	End = "end"
	// Write: one write to the log object, with the API server's answer.
	Write = "write"
	// Rate: the candidate's clock rate changed.
	Rate = "rate"
	// Exit: the candidate's Run returned after SIGTERM; it exits next.
	Exit = "exit"
	// Problem: something the candidate could not do (it goes on).
	Problem = "problem"
	// LeaseWrite: one write of the Lease by the candidate's elector
	// (Message: the HTTP method), sent at Sent and answered at Mono with
	// Status (0: no answer).
	LeaseWrite = "lease-write"
)

// Absent is a write's Read when the log did not exist: the write created it.
const Absent = "absent"

// Results of a write.
const (
	// Accepted: the API server stored the write.
	Accepted = "accepted"
	// Conflict: the log changed since the candidate read it.
	Conflict = "conflict"
	// Fenced: the fencing policy refused the write's term.
	Fenced = "fenced"
	// Unknown: no answer (a timeout, a cancelled context, a reset): the
	// write may or may not have been stored.
	Unknown = "unknown"
	// Refused: any other refusal (the write was not stored).
	Refused = "refused"
)

// Event is one line of a candidate's report. Times are nanoseconds:
// Mono on the system's monotonic clock (CLOCK_MONOTONIC, shared by every
// process of the machine, so the harness can compare them), Own on the
// candidate's own, possibly skewed, clock (Unix nanoseconds).
type Event struct {
	Kind string `json:"kind"`
	// ID is the candidate's identity; PID its process, which tells its
	// incarnations apart.
	ID  string `json:"id"`
	PID int    `json:"pid"`
	// Mono and Own are when the event happened.
	Mono int64 `json:"mono"`
	Own  int64 `json:"own,omitempty"`
	// Recv is when the harness read the line (its monotonic clock).
	Recv int64 `json:"recv,omitempty"`
	// Term is the leader term of a start, end or write: the fence stamp
	// ("<uid>/<transitions>/<holder>") for our elector, the tenure
	// ("upstream:<id>/<pid>/<n>") for client-go's.
	Term string `json:"term,omitempty"`
	// Tenure counts the candidate process's terms from 1.
	Tenure int `json:"tenure,omitempty"`
	// Write fields.
	WID    string `json:"wid,omitempty"`
	Result string `json:"result,omitempty"`
	RV     string `json:"rv,omitempty"`
	// Sent is when a write went out (Mono's clock): its read of the log
	// first, which returned at ReadDone with the log at resourceVersion
	// Read (Absent: there was no log yet), the version the write's
	// update was conditional on.
	Sent     int64  `json:"sent,omitempty"`
	ReadDone int64  `json:"readDone,omitempty"`
	Read     string `json:"read,omitempty"`
	// Late marks the write a deposed leader sends after its work
	// returned, in its old term, as a paused process would.
	Late bool `json:"late,omitempty"`
	// Status is a LeaseWrite's HTTP status.
	Status int `json:"status,omitempty"`
	// Rate is the clock rate of a Rate event.
	Rate float64 `json:"rate,omitempty"`
	// Goroutines counts, at Ready (before any elector runs) and at Exit
	// (after the last one returned), the candidate's goroutines other
	// than idle HTTP connections'; Watches, at Exit, those still
	// reading a watch.
	Goroutines int `json:"goroutines,omitempty"`
	Watches    int `json:"watches,omitempty"`
	// Message is a problem's text, or at Exit the stacks of the
	// goroutines left when there are more than at Ready.
	Message string `json:"message,omitempty"`
}

// Now reads the system's monotonic clock.
func Now() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
