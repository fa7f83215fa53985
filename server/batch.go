package server

import (
	"context"
	"sync"
	"time"

	"github.com/agentctx/agentctx/ledger"
)

// batcher group-commits the appends of concurrent requests (SVC-4, LED-10):
// the requests waiting when the sequencer is free (those that arrived while
// the previous batch committed), up to max tokens and taken within the
// window, share one Ledger.Append, one transaction and one checkpoint, and
// each request is answered once its own tokens committed. The batch runs
// on its own context: a client that disconnects does not abort the others.
type batcher struct {
	l      *ledger.Ledger
	window time.Duration
	max    int
	in     chan *pending
	wg     sync.WaitGroup
	// onCommit, when set, is told each committed batch's token count.
	onCommit func(n int)
}

type pending struct {
	inputs []ledger.Input
	outs   []ledger.Outcome
	err    error
	done   chan struct{}
}

func newBatcher(l *ledger.Ledger, window time.Duration, max int, onCommit func(int)) *batcher {
	b := &batcher{l: l, window: window, max: max, in: make(chan *pending, 1024), onCommit: onCommit}
	b.wg.Add(1)
	go b.loop()
	return b
}

// append queues inputs and waits for their outcomes (or for ctx).
func (b *batcher) append(ctx context.Context, inputs []ledger.Input) ([]ledger.Outcome, error) {
	p := &pending{inputs: inputs, done: make(chan struct{})}
	select {
	case b.in <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	<-p.done // the batch commits whatever the client does; wait for it
	return p.outs, p.err
}

func (b *batcher) loop() {
	defer b.wg.Done()
	for first := range b.in {
		batch := []*pending{first}
		n := len(first.inputs)
		deadline := time.Now().Add(b.window)
		// Take every request already waiting, up to max tokens and the
		// window; when none is waiting, commit now: the requests that
		// arrive meanwhile form the next batch, so a batch never idles
		// on a timer while every client waits for it.
	collect:
		for n < b.max && time.Now().Before(deadline) {
			select {
			case p, ok := <-b.in:
				if !ok {
					break collect
				}
				batch = append(batch, p)
				n += len(p.inputs)
			default:
				break collect
			}
		}
		b.commit(batch, n)
	}
}

func (b *batcher) commit(batch []*pending, n int) {
	all := make([]ledger.Input, 0, n)
	for _, p := range batch {
		all = append(all, p.inputs...)
	}
	outs, err := b.l.Append(context.Background(), all)
	if err == nil && b.onCommit != nil {
		b.onCommit(n)
	}
	for _, p := range batch {
		if err != nil {
			p.err = err
		} else {
			p.outs, outs = outs[:len(p.inputs)], outs[len(p.inputs):]
		}
		close(p.done)
	}
}

// close stops accepting and waits for the queued batches to commit.
func (b *batcher) close() {
	close(b.in)
	b.wg.Wait()
}
