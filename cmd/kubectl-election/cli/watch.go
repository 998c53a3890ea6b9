package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/k8sleaderelection/k8sleaderelection/internal/durations"
)

func (e *env) watchCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "watch [NAME|KIND/NAME]",
		Short: "Print one line each time an election changes hands, key, term or handoff, until interrupted",
		Long: `Print the elections in scope, then one line each time one changes: its
holder, key, term, handoff offer or pending handoff, or it appears or goes
away. Renewals alone print nothing. A handoff's deadline is the time this
command saw the request plus the holder's offer (the request carries no time).
It follows the API server's watch, and lists again when the watch ends.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all && len(args) > 0 {
				return errors.New("watch NAME and --all-namespaces conflict: a name is looked up in one namespace")
			}
			ns, err := e.scope(cmd, all)
			if err != nil {
				return err
			}
			kinds, name := []string{kindLease, kindConfigMap, kindEndpoints}, ""
			if len(args) == 1 {
				if kinds, name, err = parseRef(args[0]); err != nil {
					return err
				}
			}
			r, err := e.reader()
			if err != nil {
				return err
			}
			w := &watcher{reader: r, namespace: ns, name: name, out: e.streams.Out,
				last: map[string]string{}, asked: map[string]time.Time{}}
			return w.run(cmd.Context(), kinds)
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "watch the elections of every namespace")
	return cmd
}

// watcher follows the elections of some lock kinds in a namespace ("" for
// all), or the one called name, and prints a line per change.
type watcher struct {
	reader
	namespace, name string
	out             io.Writer

	mu sync.Mutex
	// last is the line last printed for each lock object, by object.
	last map[string]string
	// asked is when a handoff request was first seen, by object, term
	// and requester: its deadline counts from then.
	asked map[string]time.Time
}

// run follows each kind in a goroutine of its own, and returns once all have
// ended: when ctx is done (nil), or when one fails (its error).
func (w *watcher) run(ctx context.Context, kinds []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(kinds))
	var wg sync.WaitGroup
	for _, kind := range kinds {
		wg.Go(func() {
			if err := w.follow(ctx, kind); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// follow lists the objects of kind, prints what changed since it last saw
// them, and watches from there; when the watch ends it starts over.
func (w *watcher) follow(ctx context.Context, kind string) error {
	for ctx.Err() == nil {
		rv, err := w.relist(ctx, kind)
		if err != nil {
			return err
		}
		started := time.Now()
		if err := w.watchFrom(ctx, kind, rv); err != nil {
			return err
		}
		// A watch the server ends at once (a compacted resourceVersion)
		// would otherwise make this loop spin.
		if time.Since(started) < time.Second {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// relist prints the current state of kind's objects and returns the list's
// resourceVersion to watch from.
func (w *watcher) relist(ctx context.Context, kind string) (string, error) {
	opts := metav1.ListOptions{}
	var (
		objects []runtime.Object
		rv      string
	)
	switch kind {
	case kindLease:
		list, err := w.client.CoordinationV1().Leases(w.namespace).List(ctx, opts)
		if err != nil {
			return "", w.apiErr(ctx, "list", kind, err)
		}
		for i := range list.Items {
			objects = append(objects, &list.Items[i])
		}
		rv = list.ResourceVersion
	case kindConfigMap:
		list, err := w.client.CoreV1().ConfigMaps(w.namespace).List(ctx, opts)
		if err != nil {
			return "", w.apiErr(ctx, "list", kind, err)
		}
		for i := range list.Items {
			objects = append(objects, &list.Items[i])
		}
		rv = list.ResourceVersion
	case kindEndpoints:
		list, err := w.client.CoreV1().Endpoints(w.namespace).List(ctx, opts)
		if err != nil {
			return "", w.apiErr(ctx, "list", kind, err)
		}
		for i := range list.Items {
			objects = append(objects, &list.Items[i])
		}
		rv = list.ResourceVersion
	}
	present := map[string]bool{}
	for _, obj := range objects {
		if id, ok := w.show(kind, obj, false); ok {
			present[id] = true
		}
	}
	// What went away while no watch was open.
	w.mu.Lock()
	var gone []string
	for id := range w.last {
		if strings.HasPrefix(id, kind+" ") && !present[id] {
			gone = append(gone, id)
		}
	}
	w.mu.Unlock()
	for _, id := range gone {
		w.forget(id, "deleted")
	}
	return rv, nil
}

// watchFrom prints the changes of kind's objects from resourceVersion rv
// until the watch ends (nil) or ctx is done (nil).
func (w *watcher) watchFrom(ctx context.Context, kind, rv string) error {
	opts := metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}
	var (
		wi  watch.Interface
		err error
	)
	switch kind {
	case kindLease:
		wi, err = w.client.CoordinationV1().Leases(w.namespace).Watch(ctx, opts)
	case kindConfigMap:
		wi, err = w.client.CoreV1().ConfigMaps(w.namespace).Watch(ctx, opts)
	case kindEndpoints:
		wi, err = w.client.CoreV1().Endpoints(w.namespace).Watch(ctx, opts)
	}
	if err != nil {
		return w.apiErr(ctx, "watch", kind, err)
	}
	defer wi.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, open := <-wi.ResultChan():
			if !open {
				return nil
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				w.show(kind, ev.Object, true)
			case watch.Deleted:
				if id, ok := w.id(kind, ev.Object); ok {
					w.forget(id, "deleted")
				}
			case watch.Error:
				// Expired or otherwise ended: list again.
				return nil
			}
		}
	}
}

// apiErr names the failed request, or is nil once ctx is done (the user
// interrupted the command).
func (w *watcher) apiErr(ctx context.Context, verb, kind string, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return apiError(verb, kind, w.namespace, w.name, err)
}

// id names a lock object for the lines printed about it, and reports
// whether the watcher follows it.
func (w *watcher) id(kind string, obj runtime.Object) (string, bool) {
	m, ok := obj.(metav1.Object)
	if !ok || (w.name != "" && m.GetName() != w.name) {
		// Some clientsets (client-go's fake) ignore the namespace
		// and field selectors; filter here.
		return "", false
	}
	if w.namespace != "" && m.GetNamespace() != w.namespace {
		return "", false
	}
	return kind + " " + m.GetNamespace() + "/" + m.GetName(), true
}

// show prints obj's election if it changed since last printed, and reports
// its id if obj holds an election.
func (w *watcher) show(kind string, obj runtime.Object, fromWatch bool) (string, bool) {
	id, ok := w.id(kind, obj)
	if !ok {
		return "", false
	}
	now := w.now()
	var (
		e   Election
		err error
	)
	switch o := obj.(type) {
	case *coordinationv1.Lease:
		e = fromLease(o, now)
	case *corev1.ConfigMap, *corev1.Endpoints:
		e, err = fromAnnotated(o, now)
	default:
		return "", false
	}
	if errors.Is(err, errNotElection) {
		w.forget(id, "no longer an election (record annotation removed)")
		return "", false
	}
	if err != nil {
		return "", false
	}
	w.print(id, w.summary(id, e))
	return id, true
}

// summary is the line for e: what a change is judged by (the time left,
// which every renewal moves, is left out).
func (w *watcher) summary(id string, e Election) string {
	if e.Invalid != "" {
		return "invalid record: " + e.Invalid
	}
	if h := e.Handoff; h != nil && h.WithinSeconds > 0 {
		key := fmt.Sprintf("%s %d %s", id, e.Term, h.To)
		w.mu.Lock()
		seen, ok := w.asked[key]
		if !ok {
			seen = w.now()
			w.asked[key] = seen
		}
		w.mu.Unlock()
		h.Deadline = &metav1.Time{Time: seen.Add(durations.Seconds(h.WithinSeconds))}
	}
	return fmt.Sprintf("holder=%s key=%s term=%d offer=%s handoff=%s", orNone(e.Holder), orNone(e.Key), e.Term, offer(e), handoff(e))
}

// print writes line for id unless it is what was last written for it.
func (w *watcher) print(id, line string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last[id] == line {
		return
	}
	w.last[id] = line
	fmt.Fprintf(w.out, "%s %s %s\n", w.now().Format(time.TimeOnly), id, line)
}

// forget writes why id is no longer an election, if it was one.
func (w *watcher) forget(id, why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, known := w.last[id]; !known {
		return
	}
	delete(w.last, id)
	fmt.Fprintf(w.out, "%s %s %s\n", w.now().Format(time.TimeOnly), id, why)
}
