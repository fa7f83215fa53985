package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// examples are shown in the usage of the commands that have one.
var examples = map[string]string{
	"keygen":        "agentctx keygen --alg EdDSA --kid agent-a-1 --out agent-a.jwk --pub-out agent-a.pub.jwk",
	"keys trust":    "agentctx keys trust --id spiffe://example.com/agent/a --out trust.json agent-a.pub.jwk",
	"ect create":    "agentctx ect create --key agent-a.jwk --iss spiffe://example.com/agent/a --aud spiffe://example.com/agent/b --exec-act review_spec --input spec.md",
	"verify":        "agentctx verify --trust trust.json --aud spiffe://example.com/agent/b --json \"$TOKEN\"",
	"act mandate":   "agentctx act mandate --key a.jwk --iss A --sub B --aud B --purpose report --cap 'read.data={\"max_calls\":10}' --out m1",
	"act delegate":  "agentctx act delegate --key b.jwk --parent @m1 --sub C --aud C --cap 'read.data={\"max_calls\":5}' --out chain",
	"act record":    "agentctx act record --key c.jwk --mandate @chain --exec-act read.data --status completed --input q.sql",
	"ledger init":   "agentctx ledger init --db ledger.db --id spiffe://example.com/system/ledger --key-out ledger.key --out ledger.vkey",
	"ledger append": "agentctx ledger append --db ledger.db --key ledger.key --trust trust.json --batch tokens.txt",
	"ledger verify": "agentctx ledger verify --db ledger.db --trust trust.json --ledger-key-file ledger.vkey",
	"ledger export": "agentctx ledger export --db ledger.db --wid $WID --out bundle.json",
	"dag":           "agentctx dag --format mermaid --batch tokens.txt",
	"completion":    "source <(agentctx completion bash)",
}

// commandFlags returns the long flags of every runnable command, built by
// running each command in listing mode (it stops at parseFlags).
func commandFlags() map[string][]string {
	out := map[string][]string{}
	for _, name := range commandNames() {
		c, _, err := find(strings.Fields(name))
		if err != nil || c.run == nil || name == "completion" {
			continue
		}
		var names []string
		e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, out: &output{w: io.Discard}, getenv: func(string) (string, bool) { return "", false }}
		e.listing = func(f *flags) {
			f.VisitAll(func(fl *flag.Flag) { names = append(names, "--"+fl.Name) })
		}
		_ = c.run(e, nil)
		sort.Strings(names)
		out[name] = append(names, "--help")
	}
	out["completion"] = []string{"--help"}
	return out
}

func cmdCompletion(e *env, args []string) error {
	fs := newFlags(e, "completion", "completion bash|zsh|fish")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("example: source <(agentctx completion bash)", "give the shell: bash, zsh or fish")
	}
	flagsOf := commandFlags()
	switch fs.Arg(0) {
	case "bash":
		fmt.Fprint(e.stdout, bashCompletion(flagsOf))
	case "zsh":
		fmt.Fprint(e.stdout, "#compdef agentctx\nautoload -U +X bashcompinit && bashcompinit\n"+bashCompletion(flagsOf))
	case "fish":
		fmt.Fprint(e.stdout, fishCompletion(flagsOf))
	default:
		return usagef("bash, zsh or fish", "no completion for shell %s", describeArg(fs.Arg(0)))
	}
	return nil
}

func topNames() []string {
	var out []string
	for _, c := range root.subs {
		out = append(out, c.name)
	}
	return out
}

// bashCompletion completes the command, the subcommand, then the flags of
// the command (and file names for the values).
func bashCompletion(flagsOf map[string][]string) string {
	var b strings.Builder
	b.WriteString("# bash completion for agentctx: source <(agentctx completion bash)\n_agentctx() {\n")
	b.WriteString("  local cur=${COMP_WORDS[COMP_CWORD]} cmd=\"\" i w words=\"\" flags=\"\"\n")
	b.WriteString("  for ((i=1; i<COMP_CWORD; i++)); do w=${COMP_WORDS[i]}; [[ $w == -* ]] && continue; cmd=\"${cmd:+$cmd }$w\"; done\n")
	b.WriteString("  case \"$cmd\" in\n")
	fmt.Fprintf(&b, "    \"\") words=%q ;;\n", strings.Join(append(topNames(), "--help", "--version"), " "))
	for _, c := range root.subs {
		if len(c.subs) > 0 {
			fmt.Fprintf(&b, "    %q) words=%q ;;\n", c.name, c.subNames2())
		}
	}
	names := make([]string, 0, len(flagsOf))
	for n := range flagsOf {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "    %q|%q*) flags=%q ;;\n", n, n+" ", strings.Join(flagsOf[n], " "))
	}
	b.WriteString("  esac\n")
	b.WriteString("  if [[ -n $words ]]; then COMPREPLY=($(compgen -W \"$words\" -- \"$cur\")); return; fi\n")
	b.WriteString("  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\")); return; fi\n")
	b.WriteString("  COMPREPLY=($(compgen -f -- \"$cur\"))\n}\ncomplete -o default -F _agentctx agentctx\n")
	return b.String()
}

func (c *command) subNames2() string {
	names := make([]string, len(c.subs))
	for i, s := range c.subs {
		names[i] = s.name
	}
	return strings.Join(names, " ")
}

func fishCompletion(flagsOf map[string][]string) string {
	var b strings.Builder
	b.WriteString("# fish completion for agentctx: agentctx completion fish | source\n")
	for _, c := range root.subs {
		fmt.Fprintf(&b, "complete -c agentctx -f -n __fish_use_subcommand -a %s -d %q\n", c.name, c.summary)
		for _, s := range c.subs {
			fmt.Fprintf(&b, "complete -c agentctx -f -n '__fish_seen_subcommand_from %s' -a %s -d %q\n", c.name, s.name, s.summary)
		}
	}
	names := make([]string, 0, len(flagsOf))
	for n := range flagsOf {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		last := n[strings.LastIndexByte(n, ' ')+1:]
		for _, fl := range flagsOf[n] {
			fmt.Fprintf(&b, "complete -c agentctx -n '__fish_seen_subcommand_from %s' -l %s\n", last, strings.TrimPrefix(fl, "--"))
		}
	}
	return b.String()
}
