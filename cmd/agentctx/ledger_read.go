package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/agentctx/agentctx/ledger"
)

func cmdLedgerList(e *env, args []string) error {
	fs := newFlags(e, "ledger list", "ledger list --db X [--workflows] [--limit N] [--before INDEX]")
	var f ledgerFlags
	fs.StringVar(&f.db, "db", "", "the ledger database")
	workflows := fs.Bool("workflows", false, "list workflows (newest activity first) instead of entries")
	limit := fs.Int("limit", 20, "at most this many lines (1..1000)")
	before := fs.Int64("before", -1, "page: start below this entry index (the value printed as the next page)")
	fs.out()
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return usagef("", "--limit must be 1..1000")
	}
	ctx := context.Background()
	_, store, err := openLedger(ctx, e, &f, false, false)
	if err != nil {
		return err
	}
	defer store.Close()
	size, err := store.Size(ctx)
	if err != nil {
		return failf("%v", err)
	}
	top := size
	if *before >= 0 && uint64(*before) < size {
		top = uint64(*before)
	}
	enc := json.NewEncoder(e.stdout)
	type workflow struct {
		WID         string `json:"wid"`
		LatestIndex uint64 `json:"latest_index"`
		ReceivedAt  int64  `json:"received_at"`
	}
	seen := map[string]bool{}
	n := 0
	next := int64(-1)
	const chunk = 1024
	for hi := top; hi > 0 && next < 0; {
		lo := hi - min(hi, chunk)
		es, err := store.Entries(ctx, lo, hi)
		if err != nil {
			return failf("%v", err)
		}
		for i := len(es) - 1; i >= 0; i-- {
			x := &es[i]
			if n == *limit {
				next = int64(x.Index) + 1
				break
			}
			if !*workflows {
				enc.Encode(x.JSON())
				n++
				continue
			}
			if x.WID == "" || seen[x.WID] {
				continue
			}
			seen[x.WID] = true
			enc.Encode(workflow{x.WID, x.Index, x.ReceivedAt})
			n++
		}
		hi = lo
	}
	if next > 0 {
		fmt.Fprintf(e.stderr, "agentctx: more: next page with --before %d\n", next)
	}
	return nil
}

// bundle is an evidence bundle: a workflow's tokens with their receipts at
// one checkpoint, checkable offline with the ledger's key alone.
type bundle struct {
	Format      string        `json:"format"`
	Ledger      string        `json:"ledger"`
	VerifierKey string        `json:"verifier_key"`
	WID         string        `json:"wid"`
	Checkpoint  string        `json:"checkpoint"`
	Entries     []bundleEntry `json:"entries"`
}

type bundleEntry struct {
	Token   string          `json:"token"`
	Receipt *ledger.Receipt `json:"receipt"`
}

const bundleFormat = "agentctx-evidence-bundle-v1"

func cmdLedgerExport(e *env, args []string) error {
	fs := newFlags(e, "ledger export", "ledger export --db X --wid W [--out FILE]")
	var f ledgerFlags
	fs.StringVar(&f.db, "db", "", "the ledger database")
	wid := fs.String("wid", "", "the workflow to export")
	fs.out()
	if err := parseFlagsNoArgs(fs, args); err != nil {
		return err
	}
	if *wid == "" {
		return usagef("", "--wid is required")
	}
	ctx := context.Background()
	l, store, err := openLedger(ctx, e, &f, false, false)
	if err != nil {
		return err
	}
	defer store.Close()
	es, err := store.Workflow(ctx, strings.ToLower(*wid))
	if err != nil {
		return failf("%v", err)
	}
	if len(es) == 0 {
		return failf("workflow %s has no entries", describeArg(*wid))
	}
	cp, err := l.CosignedCheckpoint(ctx, 0)
	if err != nil {
		return failf("%v", err)
	}
	b := bundle{Format: bundleFormat, Ledger: l.Meta().ID, VerifierKey: l.Meta().VerifierKey, WID: strings.ToLower(*wid), Checkpoint: string(cp)}
	for _, x := range es {
		r, err := l.Prove(ctx, x.Index, 0)
		if err != nil {
			return failf("receipt of entry %d: %v", x.Index, err)
		}
		b.Entries = append(b.Entries, bundleEntry{Token: string(x.Token), Receipt: r})
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return failf("%v", err)
	}
	fmt.Fprintf(e.stdout, "%s\n", out)
	return nil
}

func cmdLedgerVerifyBundle(e *env, args []string) error {
	fs := newFlags(e, "ledger verify-bundle", "ledger verify-bundle --ledger-key-file VKEY BUNDLE|-")
	vkeyFile := fs.String("ledger-key-file", "", "the ledger's verifier key as you know it (pinned); without it the bundle's own key is used, unpinned")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("example: agentctx ledger verify-bundle --ledger-key-file ledger.vkey bundle.json", "give one bundle file, or -")
	}
	var data []byte
	if fs.Arg(0) == "-" {
		s, err := readStdin(e, "a bundle")
		if err != nil {
			return err
		}
		data = []byte(s)
	} else {
		var err error
		if data, err = readFileArg("", strings.TrimPrefix(fs.Arg(0), "@")); err != nil {
			return err
		}
	}
	var b bundle
	if err := json.Unmarshal(data, &b); err != nil || b.Format != bundleFormat {
		return usagef("give the output of agentctx ledger export", "%s is not an evidence bundle", describeArg(fs.Arg(0)))
	}
	vkey, pinned := strings.TrimSpace(b.VerifierKey), false
	if *vkeyFile != "" {
		k, err := readVerifierKey(*vkeyFile)
		if err != nil {
			return err
		}
		vkey, pinned = k, true
	}
	if len(b.Entries) == 0 {
		return failf("the bundle holds no entries")
	}
	size := uint64(0)
	for i, x := range b.Entries {
		if x.Receipt == nil {
			return failf("entry %d of the bundle has no receipt", i+1)
		}
		if err := ledger.VerifyReceipt(vkey, x.Receipt, []byte(x.Token)); err != nil {
			return failf("bundle does NOT verify: entry %d (index %d): %v", i+1, x.Receipt.Index, err)
		}
		if x.Receipt.WID != b.WID {
			return failf("bundle does NOT verify: entry %d belongs to workflow %s, the bundle is %s", i+1, describeArg(x.Receipt.WID), describeArg(b.WID))
		}
		size = max(size, x.Receipt.TreeSize)
	}
	key := "verifier key pinned"
	if !pinned {
		key = "verifier key UNPINNED (taken from the bundle; pass --ledger-key-file)"
	}
	fmt.Fprintf(e.stdout, "bundle verified: %s of workflow %s in ledger %s at tree size %d; %s\n",
		plural(uint64(len(b.Entries)), "entry", "entries"), b.WID, safeText(b.Ledger), size, key)
	return nil
}
