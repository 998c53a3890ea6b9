package robustness

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/k8sleaderelection/k8sleaderelection/testbed/faults"
	"github.com/k8sleaderelection/k8sleaderelection/testbed/robustness/event"
)

// process is one incarnation of a candidate: an OS process whose stdout
// feeds the history.
type process struct {
	id    string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	// done is closed once the process has exited and its output is read;
	// code is its exit code then.
	done chan struct{}
	code int
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// spawn starts candidate id with key, reaching the API server through
// proxy. Its events go to r's history; its stderr to a file in r's
// directory.
func (r *run) spawn(id, key, elector string, proxy *faults.Proxy) (*process, error) {
	config := proxy.Config(r.suite.cp.Config())
	t := r.timing
	cmd := exec.Command(r.suite.binary,
		"-server", config.Host, "-token", config.BearerToken,
		"-namespace", r.ns, "-lease", leaseName, "-log", logName,
		"-id", id, "-key", key, "-elector", elector,
		"-lease-duration", t.LeaseDuration.String(), "-renew-deadline", t.RenewDeadline.String(),
		"-retry-period", t.RetryPeriod.String())
	stderr, err := os.OpenFile(filepath.Join(r.dir, id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("candidate %s: open its log: %w", id, err)
	}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		_ = stderr.Close()
		return nil, fmt.Errorf("candidate %s: %w", id, err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		_ = stderr.Close()
		return nil, fmt.Errorf("candidate %s: %w", id, err)
	}
	if err := cmd.Start(); err != nil {
		_ = stderr.Close()
		return nil, fmt.Errorf("candidate %s: start: %w", id, err)
	}
	p := &process{id: id, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer stderr.Close()
		r.read(id, stdout)
		err := cmd.Wait()
		var exit *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			p.code = exit.ExitCode()
		default:
			p.code = -1
		}
	}()
	return p, nil
}

// read records candidate id's events from its output, each stamped with
// when it was read.
func (r *run) read(id string, out io.Reader) {
	scanner := bufio.NewScanner(out)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		var e event.Event
		if err := json.Unmarshal(scanner.Bytes(), &e); err != nil {
			r.gap(fmt.Sprintf("candidate %s: unreadable line %q: %v", id, scanner.Text(), err))
			continue
		}
		e.Recv = event.Now()
		r.record(e)
	}
	if err := scanner.Err(); err != nil {
		// What the candidate reports from here on is lost: a gap. Its
		// output is still drained, or it would block on a full pipe.
		r.gap(fmt.Sprintf("candidate %s: its report was cut off: %v", id, err))
		_, _ = io.Copy(io.Discard, out)
	}
}

// signal sends sig to p; a process that has exited is no error.
func (p *process) signal(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
}

// stop ends p with SIGTERM, or SIGKILL if it has not exited within grace.
// It returns the exit and how long the process took.
func (p *process) stop(grace time.Duration) Exit {
	began := time.Now()
	p.signal(syscall.SIGCONT)
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return Exit{ID: p.id, PID: p.pid(), Code: p.code, Took: time.Since(began)}
	case <-time.After(grace):
		p.signal(syscall.SIGKILL)
		<-p.done
		return Exit{ID: p.id, PID: p.pid(), Code: -1, Took: time.Since(began)}
	}
}

// kill ends p with SIGKILL.
func (p *process) kill() Exit {
	p.signal(syscall.SIGKILL)
	<-p.done
	return Exit{ID: p.id, PID: p.pid(), Killed: true, Code: p.code}
}

// setRate sets p's clock rate.
func (p *process) setRate(rate float64) {
	_, _ = fmt.Fprintf(p.stdin, "rate %g\n", rate)
}
