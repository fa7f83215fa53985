package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/agentctx/agentctx/witness"
)

// witnessTimeout bounds one round of cosigning requests.
const witnessTimeout = 10 * time.Second

// witnessing asks the configured witnesses to cosign each new checkpoint,
// in the background (an append never waits for a witness), and stores the
// cosignatures with the checkpoint, which /checkpoint and receipts then
// carry. A round that fails is retried at the next append or after a
// delay.
type witnessing struct {
	s      *Server
	peers  []*witness.Peer
	kick   chan struct{}
	stop   chan struct{}
	done   sync.WaitGroup
	retry  time.Duration
	mu     sync.Mutex
	status map[string]string // witness -> "ok" or the last error, for metrics
}

func newWitnessing(s *Server, peers []*witness.Peer) *witnessing {
	w := &witnessing{s: s, peers: peers, kick: make(chan struct{}, 1), stop: make(chan struct{}), retry: 5 * time.Second, status: map[string]string{}}
	w.done.Add(1)
	go w.loop()
	w.notify()
	return w
}

// notify asks for a round without waiting (one pending round at most).
func (w *witnessing) notify() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *witnessing) close() {
	close(w.stop)
	w.done.Wait()
}

func (w *witnessing) loop() {
	defer w.done.Done()
	t := time.NewTimer(w.retry)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
		case <-t.C:
		}
		ok := w.round()
		if !ok {
			t.Reset(w.retry)
		}
	}
}

// round cosigns the latest checkpoint with every witness, in parallel.
func (w *witnessing) round() bool {
	ctx, cancel := context.WithTimeout(context.Background(), witnessTimeout)
	defer cancel()
	cp, err := w.s.l.Checkpoint(ctx)
	if err != nil || cp == nil {
		return cp == nil && err == nil
	}
	c, err := w.s.l.OpenCheckpoint(cp)
	if err != nil {
		w.s.cfg.Log.Error("witnessing: the latest checkpoint does not open", "err", err)
		return false
	}
	have, err := w.s.l.Cosignatures(ctx, c.Size)
	if err != nil {
		return false
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allOK := true
	for _, p := range w.peers {
		if cosigned(have, p.Name) {
			continue // asked again, it would add a line for the same size
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lines, err := p.Cosign(ctx, cp, c.Size, w.s.l.Consistency)
			if err == nil {
				err = w.s.l.AddCosignatures(ctx, c.Size, lines)
			}
			w.mu.Lock()
			if err != nil {
				w.status[p.Name] = "error"
				w.s.metrics.witnessed(p.Name, false)
			} else {
				w.status[p.Name] = "ok"
				w.s.metrics.witnessed(p.Name, true)
			}
			w.mu.Unlock()
			if err != nil {
				w.s.cfg.Log.Warn("witness did not cosign", "witness", p.Name, "size", c.Size, "err", err)
				mu.Lock()
				allOK = false
				mu.Unlock()
				return
			}
			w.s.cfg.Log.Info("cosigned", "witness", p.Name, "size", c.Size)
		}()
	}
	wg.Wait()
	return allOK
}

func (m *metrics) witnessed(name string, ok bool) {
	res := "ok"
	if !ok {
		res = "error"
	}
	m.mu.Lock()
	m.witness[fmt.Sprintf("witness=%q,result=%q", name, res)]++
	m.mu.Unlock()
}

// cosigned reports whether lines hold a cosignature line of witness name.
func cosigned(lines []string, name string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, "— "+name+" ") {
			return true
		}
	}
	return false
}
