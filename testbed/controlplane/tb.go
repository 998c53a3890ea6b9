package controlplane

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// serverTB is the testing.TB-like value the kube-apiserver test server needs,
// for use outside a test: a program (the demo, a benchmark) has no
// *testing.T. It writes the server's log lines to a writer, collects
// cleanups so they can be run in reverse order on shutdown, and turns a fatal
// failure into an error instead of ending the process.
type serverTB struct {
	name string
	out  io.Writer

	mu       sync.Mutex
	failed   bool
	skipped  bool
	cleanups []func()
}

// errFailNow is what FailNow panics with; run recovers it.
var errFailNow = errors.New("test server failed")

func newServerTB(name string, out io.Writer) *serverTB {
	return &serverTB{name: name, out: out}
}

// run calls f and turns a FailNow inside it into an error.
func (t *serverTB) run(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if r != errFailNow {
				panic(r)
			}
			err = fmt.Errorf("%s: failed to start (see its log)", t.name)
		}
	}()
	if err := f(); err != nil {
		return err
	}
	if t.Failed() {
		return fmt.Errorf("%s: reported a failure (see its log)", t.name)
	}
	return nil
}

// runCleanups runs the registered cleanups, last registered first.
func (t *serverTB) runCleanups() {
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()
		f()
	}
}

func (t *serverTB) logf(format string, args ...any) {
	fmt.Fprintf(t.out, "%s: %s\n", t.name, fmt.Sprintf(format, args...))
}

func (t *serverTB) Attr(key, value string) { t.logf("attr %s=%s", key, value) }
func (t *serverTB) Chdir(dir string)       { t.Fatalf("Chdir(%q) is not supported outside tests", dir) }
func (t *serverTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}
func (t *serverTB) Error(args ...any) { t.logf("%s", fmt.Sprint(args...)); t.Fail() }
func (t *serverTB) Errorf(format string, args ...any) {
	t.logf(format, args...)
	t.Fail()
}
func (t *serverTB) Fail() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}
func (t *serverTB) FailNow() { t.Fail(); panic(errFailNow) }
func (t *serverTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}
func (t *serverTB) Fatal(args ...any)                 { t.logf("%s", fmt.Sprint(args...)); t.FailNow() }
func (t *serverTB) Fatalf(format string, args ...any) { t.logf(format, args...); t.FailNow() }
func (t *serverTB) Helper()                           {}
func (t *serverTB) Log(args ...any)                   { t.logf("%s", fmt.Sprint(args...)) }
func (t *serverTB) Logf(format string, args ...any)   { t.logf(format, args...) }
func (t *serverTB) Name() string                      { return t.name }
func (t *serverTB) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	_ = os.Setenv(key, value)
	t.Cleanup(func() {
		if had {
			_ = os.Setenv(key, old)
		} else {
			_ = os.Unsetenv(key)
		}
	})
}
func (t *serverTB) Skip(args ...any)                 { t.logf("%s", fmt.Sprint(args...)); t.SkipNow() }
func (t *serverTB) Skipf(format string, args ...any) { t.logf(format, args...); t.SkipNow() }
func (t *serverTB) SkipNow() {
	t.mu.Lock()
	t.skipped = true
	t.mu.Unlock()
	t.FailNow()
}
func (t *serverTB) Skipped() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.skipped
}
func (t *serverTB) TempDir() string {
	dir, err := os.MkdirTemp("", "controlplane-"+t.name)
	if err != nil {
		t.Fatalf("make temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
