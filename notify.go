package k8sleaderelection

import "sync"

// leaderNotifier delivers OnNewLeader calls one at a time, in order, from a
// goroutine of its own, so that a slow callback never holds up the election
// and two calls never overlap.
type leaderNotifier struct {
	callback func(string)

	mu      sync.Mutex
	pending []string

	wake chan struct{} // holds one token while pending has news
	quit chan struct{} // closed by stop
	done chan struct{} // closed when the goroutine has exited
}

// startNotifier starts a notifier for callback; with a nil callback it
// returns nil, which notify and stop accept. If previous (the notifier of an
// earlier Run of the same elector) is still delivering, the new one makes no
// call until it has finished, so that calls never overlap across runs.
func startNotifier(callback func(string), previous *leaderNotifier) *leaderNotifier {
	if callback == nil {
		return nil
	}
	n := &leaderNotifier{
		callback: callback,
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	var after <-chan struct{}
	if previous != nil {
		after = previous.done
	}
	go n.loop(after)
	return n
}

// notify queues a call with identity; it never blocks.
func (n *leaderNotifier) notify(identity string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.pending = append(n.pending, identity)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// stop tells the goroutine to make the calls still queued and then end. It
// does not wait: a callback that blocks must not keep Run from returning.
func (n *leaderNotifier) stop() {
	if n == nil {
		return
	}
	close(n.quit)
}

func (n *leaderNotifier) loop(after <-chan struct{}) {
	defer close(n.done)
	if after != nil {
		<-after
	}
	for {
		select {
		case <-n.wake:
			n.deliver()
		case <-n.quit:
			n.deliver()
			return
		}
	}
}

func (n *leaderNotifier) deliver() {
	for {
		n.mu.Lock()
		batch := n.pending
		n.pending = nil
		n.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, identity := range batch {
			n.callback(identity)
		}
	}
}
