package robustness

import (
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/robustness/event"
)

// Timing is the election timing every candidate of a schedule runs with,
// and the bounds the checker holds the history to.
type Timing struct {
	LeaseDuration time.Duration `json:"leaseDuration"`
	RenewDeadline time.Duration `json:"renewDeadline"`
	RetryPeriod   time.Duration `json:"retryPeriod"`
	// FenceWindow is the longest a deposed term's write may be accepted
	// after the Lease moved on: the policy reads the Lease from the API
	// server's cache.
	FenceWindow time.Duration `json:"fenceWindow"`
	// LivenessSlack is how much later than LeaseDuration after the faults
	// heal a leader may start.
	LivenessSlack time.Duration `json:"livenessSlack"`
}

// History is everything one schedule's run recorded. Times are nanoseconds
// on the machine's monotonic clock (event.Now), which the harness and the
// candidates share.
type History struct {
	Seed    uint64 `json:"seed"`
	Elector string `json:"elector"`
	// Electors names each candidate's elector by identity when Elector
	// is ElectorMixed.
	Electors map[string]string `json:"electors,omitempty"`
	Timing   Timing            `json:"timing"`
	// Expect is the schedule's own check, if any (Schedule.Expect).
	Expect string `json:"expect,omitempty"`
	// Start and End bound the schedule: candidates start at Start, and are
	// told to stop (SIGTERM) at End.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// Faults are the fault windows as they were injected.
	Faults []Fault `json:"faults"`
	// Events are the candidates' reports, each stamped with Recv.
	Events []event.Event `json:"events"`
	// Lease and Log are what the harness's watches of the Lease and of
	// the log object delivered, in the API server's order.
	Lease []LeaseEvent `json:"lease"`
	Log   []LogEvent   `json:"log"`
	// FinalLog is the log object's lines after every candidate exited;
	// FinalRead the read that returned them.
	FinalLog  []string `json:"finalLog"`
	FinalRead LogRead  `json:"finalRead"`
	// Exits are how the candidate processes ended.
	Exits []Exit `json:"exits"`
	// Gaps are problems of the recording itself (a watch that lost
	// events): a history with gaps proves less.
	Gaps []string `json:"gaps,omitempty"`
}

// Fault is one fault window.
type Fault struct {
	Kind string `json:"kind"`
	// Target names the candidate (its identity) the fault hit, "" for
	// the Lease; PID the process.
	Target string `json:"target,omitempty"`
	PID    int    `json:"pid,omitempty"`
	// Param is the fault's size: a pause's or latency's duration, a
	// clock rate.
	Param string `json:"param,omitempty"`
	// Rate is a clock fault's rate.
	Rate float64 `json:"rate,omitempty"`
	// Latency is the delay each way of a latency or etcd-slow-disk
	// fault.
	Latency time.Duration `json:"latency,omitempty"`
	// Start and End bound the window; End equals Start for an instant
	// fault (the Lease deleted, a foreign holder written).
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// InBounds is true when the fault stays inside what the elector
	// promises to survive with one leader at a time.
	InBounds bool `json:"inBounds"`
}

// LeaseEvent is one change of the Lease, as the harness's watch saw it.
type LeaseEvent struct {
	Recv int64 `json:"recv"`
	// RV is the Lease's resourceVersion (an etcd revision: the Lease and
	// the log share one order).
	RV      int64  `json:"rv"`
	Deleted bool   `json:"deleted,omitempty"`
	Term    string `json:"term"`
	Holder  string `json:"holder"`
}

// LogEvent is one version of the log object.
type LogEvent struct {
	Recv int64 `json:"recv"`
	RV   int64 `json:"rv"`
	// Stamp is the term annotation the version carries.
	Stamp string `json:"stamp,omitempty"`
	// Added are the lines this version appended to the one before.
	Added []string `json:"added"`
	// Rewritten is set when this version does not start with the
	// lines of the one before: lines were lost.
	Rewritten bool `json:"rewritten,omitempty"`
}

// Exit is how one candidate process ended.
type Exit struct {
	ID  string `json:"id"`
	PID int    `json:"pid"`
	// Killed: the harness killed it (SIGKILL); otherwise it was told to
	// stop with SIGTERM.
	Killed bool `json:"killed,omitempty"`
	// Code is its exit code, -1 if it had to be killed after the SIGTERM
	// went unanswered.
	Code int `json:"code"`
	// Took is how long it took to exit after SIGTERM.
	Took time.Duration `json:"took,omitempty"`
}

// LogRead is one read of the log object by the harness: sent at Call,
// answered at Return with the object at resourceVersion RV (0: there was
// none).
type LogRead struct {
	Call   int64 `json:"call"`
	Return int64 `json:"return"`
	RV     int64 `json:"rv"`
}
