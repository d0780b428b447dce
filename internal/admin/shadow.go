package admin

import (
	"cmp"
	"slices"
	"time"

	"github.com/keybrake/keybrake/audit"
	"github.com/keybrake/keybrake/policy"
)

// ShadowAgent is what the shadow policy (keybrake.Options.ShadowPolicyFile)
// decided otherwise, for one agent on one vendor over a range of records:
// how many of its calls, by what was enforced, what the shadow would
// have done and the shadow's rule, and the first such call.
type ShadowAgent struct {
	Agent  string        `json:"agent"`
	Vendor string        `json:"vendor"`
	Calls  int           `json:"calls"`  // calls recorded in the range
	Differ int           `json:"differ"` // of which the shadow decided otherwise
	By     []ShadowCount `json:"by"`     // most first
	First  ShadowCall    `json:"first"`
	Policy string        `json:"policy"` // the shadow policy's hash, the latest seen
}

// ShadowCount is how many calls went From one decision To another by the
// shadow's Rule and Code.
type ShadowCount struct {
	From  policy.Decision `json:"from"`
	To    policy.Decision `json:"to"`
	Rule  string          `json:"rule"`
	Code  string          `json:"code,omitempty"`
	Count int             `json:"count"`
}

// ShadowCall names a call: its record, time, method and path.
type ShadowCall struct {
	ID     uint64    `json:"id"`
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
}

// ShadowTally sums records into ShadowAgents: Add each, then Agents. The
// zero ShadowTally is ready to use.
type ShadowTally struct {
	agents map[[2]string]*ShadowAgent
	counts map[[2]string]map[ShadowCount]int
}

// Add counts r, a call's record (events are skipped).
func (t *ShadowTally) Add(r *audit.Record) {
	if r.Event != "" {
		return
	}
	if t.agents == nil {
		t.agents, t.counts = map[[2]string]*ShadowAgent{}, map[[2]string]map[ShadowCount]int{}
	}
	k := [2]string{r.Agent, r.Vendor}
	a := t.agents[k]
	if a == nil {
		a = &ShadowAgent{Agent: r.Agent, Vendor: r.Vendor}
		t.agents[k], t.counts[k] = a, map[ShadowCount]int{}
	}
	a.Calls++
	sh := r.Shadow
	if sh == nil {
		return
	}
	if a.Differ == 0 {
		a.First = ShadowCall{ID: r.ID, Time: r.Time, Method: r.Method, Path: r.Path}
	}
	a.Differ++
	a.Policy = sh.Policy
	t.counts[k][ShadowCount{From: r.Decision, To: sh.Decision, Rule: sh.Rule, Code: sh.Code}]++
}

// Agents are the agents with a call the shadow decided otherwise, by
// agent and vendor.
func (t *ShadowTally) Agents() []ShadowAgent {
	var out []ShadowAgent
	for k, a := range t.agents {
		if a.Differ == 0 {
			continue
		}
		for c, n := range t.counts[k] {
			c.Count = n
			a.By = append(a.By, c)
		}
		slices.SortFunc(a.By, func(x, y ShadowCount) int {
			return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.From, y.From), cmp.Compare(x.To, y.To),
				cmp.Compare(x.Rule, y.Rule), cmp.Compare(x.Code, y.Code))
		})
		out = append(out, *a)
	}
	slices.SortFunc(out, func(x, y ShadowAgent) int {
		return cmp.Or(cmp.Compare(x.Agent, y.Agent), cmp.Compare(x.Vendor, y.Vendor))
	})
	return out
}
