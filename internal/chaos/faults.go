package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventflow/eventflow/internal/backoff"
)

// fault is one kind of failure the driver injects.
type fault struct {
	name string
	doc  string
	// resources are what the fault breaks or needs to itself: faults that
	// share one never run at the same time.
	resources []string
	// repeat is how many times a run of this fault alone injects it.
	repeat int
	// run injects the fault once and undoes it, and says what happened.
	run func(ctx context.Context, r *runner, rng *rand.Rand) (string, error)
}

// allResources, as a fault's resource, is every resource: the fault runs
// alone.
const allResources = "*"

// Faults is the catalog, in the order the report lists them.
var faults = []*fault{
	// While the broker is down nothing flows, and the other faults would
	// break a system with nothing in flight: it runs alone.
	{name: "kafka-kill", doc: "SIGKILL the broker (the java pid of scripts/services.sh), then start it again",
		resources: []string{allResources}, repeat: 2, run: killKafka},
	{name: "relay-kill", doc: "SIGKILL the active relay at a random moment; the standby takes over; restart it",
		resources: []string{"relays"}, repeat: 4, run: killRelay},
	{name: "relay-kill-unmarked", doc: "SIGKILL the active relay between publishing a batch and deleting it from the outbox " +
		"(the driver holds a row lock on outbox rows, so the relay's DELETE waits, and kills it then)",
		resources: []string{"pg", "relays"}, repeat: 3, run: killRelayUnmarked},
	{name: "notifier-kill", doc: "SIGKILL a notifier at a random moment; restart it",
		resources: []string{"notifiers"}, repeat: 3, run: killNotifier},
	{name: "notifier-kill-uncommitted", doc: "SIGKILL a notifier between recording deliveries and committing offsets " +
		"(the driver locks the inbox table mid-poll, so its next INSERT waits, and kills it then)",
		resources: []string{"notifiers", "pg"}, repeat: 2, run: killNotifierUncommitted},
	{name: "notifier-kill-after-accept", doc: "SIGKILL a notifier between the SMTP server accepting a message and marking it sent " +
		"(the sink holds the 250 and the driver kills the sender then)",
		resources: []string{"notifiers", "smtp"}, repeat: 3, run: killNotifierAfterAccept},
	{name: "postgres-restart", doc: "restart PostgreSQL under load with pg_ctl restart -m immediate (a crash and recovery)",
		resources: []string{"pg"}, repeat: 2, run: restartPostgres},
	{name: "smtp-down", doc: "the SMTP server stops listening for a few seconds",
		resources: []string{"smtp"}, repeat: 2, run: smtpMode(SinkDown, 3, 6)},
	{name: "smtp-4xx", doc: "the SMTP server answers 451 (to RCPT, or after DATA) for a few seconds",
		resources: []string{"smtp"}, repeat: 2, run: smtpMode(SinkTempFail, 3, 6)},
	{name: "smtp-slow", doc: "the SMTP server delays every reply by 150 ms for a few seconds",
		resources: []string{"smtp"}, repeat: 2, run: smtpMode(SinkSlow, 4, 8)},
	{name: "smtp-drop-after-data", doc: "the SMTP server accepts each message and drops the connection without a reply, for a few seconds",
		resources: []string{"smtp"}, repeat: 2, run: smtpMode(SinkDropAfterData, 2, 4)},
	{name: "rebalance", doc: "a third notifier joins the consumer group and leaves it again (SIGTERM)",
		resources: []string{"notifiers"}, repeat: 2, run: rebalance},
	{name: "duplicates", doc: "produce copies of 10 events already in the topic",
		resources: []string{"kafka"}, repeat: 2, run: injectDuplicates},
	{name: "poison", doc: "produce 4 records the notifier cannot handle (garbage, schema-invalid, no id, bad JSON)",
		resources: []string{"kafka"}, repeat: 2, run: injectPoison},
}

// FaultNames lists the catalog.
func FaultNames() []string {
	var names []string
	for _, f := range faults {
		names = append(names, f.name)
	}
	return names
}

// FaultDocs describes each fault, for -help.
func FaultDocs() string {
	var b strings.Builder
	for _, f := range faults {
		fmt.Fprintf(&b, "  %-27s %s\n", f.name, f.doc)
	}
	return b.String()
}

func faultByName(name string) *fault {
	for _, f := range faults {
		if f.name == name {
			return f
		}
	}
	return nil
}

// Scenarios besides the name of one fault.
const (
	ScenarioNone  = "none"                   // no fault: the baseline
	ScenarioAll   = "all"                    // every fault once, in an order the seed shuffles
	ScenarioMixed = "mixed"                  // faults drawn at random, at random times, overlapping
	ScenarioKills = "broker-and-relay-kills" // the delivery-guarantee table's run
)

// Scenarios lists the scenarios a run may play.
func Scenarios() []string {
	return append([]string{ScenarioNone, ScenarioAll, ScenarioMixed, ScenarioKills}, FaultNames()...)
}

type scheduled struct {
	at    time.Duration
	fault *fault
}

// schedule places a scenario's faults in a stream of length d.
func schedule(scenario string, rng *rand.Rand, d time.Duration) ([]scheduled, error) {
	frac := func(x float64) time.Duration { return time.Duration(x * float64(d)) }
	var out []scheduled
	switch scenario {
	case ScenarioNone:
	case ScenarioAll:
		order := rng.Perm(len(faults))
		for i, j := range order {
			out = append(out, scheduled{frac(0.05 + 0.85*float64(i)/float64(len(faults))), faults[j]})
		}
	case ScenarioMixed:
		n := max(8, int(d/(4*time.Second)))
		for range n {
			out = append(out, scheduled{frac(0.05 + 0.85*rng.Float64()), faults[rng.IntN(len(faults))]})
		}
	case ScenarioKills:
		// The delivery-guarantee table: the broker and the relay killed.
		out = append(out,
			scheduled{frac(0.15), faultByName("relay-kill")},
			scheduled{frac(0.30), faultByName("relay-kill-unmarked")},
			scheduled{frac(0.40), faultByName("kafka-kill")},
			scheduled{frac(0.60), faultByName("relay-kill")},
			scheduled{frac(0.75), faultByName("relay-kill-unmarked")},
			scheduled{frac(0.85), faultByName("relay-kill")},
		)
	default:
		f := faultByName(scenario)
		if f == nil {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", scenario, strings.Join(Scenarios(), ", "))
		}
		for i := range f.repeat {
			at := 0.1 + 0.75*float64(i)/float64(max(f.repeat-1, 1)) + 0.04*(rng.Float64()-0.5)
			if f.repeat == 1 {
				at = 0.4
			}
			out = append(out, scheduled{frac(at), f})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at < out[j].at })
	return out, nil
}

func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

func killKafka(ctx context.Context, r *runner, rng *rand.Rand) (string, error) {
	pid, err := r.svc.KillKafka()
	if err != nil {
		return "", err
	}
	down := time.Now()
	backoff.Sleep(ctx, between(rng, 500*time.Millisecond, 2*time.Second))
	if err := r.svc.StartKafka(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("broker pid %d SIGKILLed; answering again after %.1fs", pid, time.Since(down).Seconds()), nil
}

// activeRelay is the relay holding the lease, or a random running one.
func (r *runner) activeRelay(ctx context.Context, rng *rand.Rand) (*Proc, bool) {
	if pid, err := r.db.ActiveRelayPid(ctx); err == nil {
		if p := r.cluster.ByPid(pid); p != nil {
			return p, true
		}
	}
	relays := r.cluster.Running("relay-")
	if len(relays) == 0 {
		return nil, false
	}
	return relays[rng.IntN(len(relays))], false
}

func killRelay(ctx context.Context, r *runner, rng *rand.Rand) (string, error) {
	p, active := r.activeRelay(ctx, rng)
	if p == nil {
		return "", errors.New("no relay running")
	}
	if _, err := r.cluster.Kill(p.Name); err != nil {
		return "", err
	}
	what := "the active relay"
	if !active {
		what = "a relay (no lease held at that moment)"
	}
	return fmt.Sprintf("SIGKILLed %s %s at a random moment; %s", what, p.Instance, r.restart(ctx, rng, p.Name, "relay")), nil
}

// restart starts name again after a short pause and says so.
func (r *runner) restart(ctx context.Context, rng *rand.Rand, name, roles string) string {
	backoff.Sleep(ctx, between(rng, 300*time.Millisecond, 1500*time.Millisecond))
	before := r.cluster.FailedStarts()
	p, err := r.cluster.StartRetry(ctx, name, roles, 3*time.Minute)
	if err != nil {
		r.errorf("restart %s: %v", name, err)
		return "restarting it failed: " + err.Error()
	}
	if n := r.cluster.FailedStarts() - before; n > 0 {
		return fmt.Sprintf("restarted as %s (after %d starts that exited: a service it needs was down)", p.Instance, n)
	}
	return "restarted as " + p.Instance
}

func instanceName(instance string) string {
	name, _, _ := strings.Cut(instance, ".i")
	return name
}

func killRelayUnmarked(ctx context.Context, r *runner, rng *rand.Rand) (string, error) {
	tx, err := r.db.pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Lock outbox rows as they commit, before the relay deletes them. The
	// relay reads them regardless (a plain SELECT takes no row lock),
	// publishes them, and its DELETE then waits for this transaction.
	locked := 0
	deadline := time.Now().Add(15 * time.Second)
	for locked == 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		rows, err := tx.Query(ctx, `SELECT seq FROM outbox ORDER BY seq LIMIT 5 FOR UPDATE SKIP LOCKED`)
		if err != nil {
			return "", err
		}
		for rows.Next() {
			locked++
		}
		rows.Close()
		if locked == 0 {
			time.Sleep(3 * time.Millisecond)
		}
	}
	if locked == 0 {
		tx.Rollback(ctx)
		ev, err := killRelay(ctx, r, rng)
		return "no outbox row caught in 15 s (nothing committed?); instead " + ev, err
	}
	b, ok := r.db.waitBlocked(ctx, "DELETE FROM outbox%", 5*time.Second)
	if !ok {
		tx.Rollback(ctx)
		ev, err := killRelay(ctx, r, rng)
		return fmt.Sprintf("%d outbox rows locked but no relay DELETE waited for them in 5 s; instead %s", locked, ev), err
	}
	name := instanceName(b.Instance)
	p := r.cluster.Get(name)
	if p == nil || p.Instance != b.Instance {
		return "", fmt.Errorf("the waiting DELETE belongs to %q, which is not running", b.Instance)
	}
	if _, err := r.cluster.Kill(name); err != nil {
		return "", err
	}
	// The process is gone; its server process would be too, were the
	// DELETE not waiting for a lock: end it, so the DELETE never happens.
	r.db.terminate(ctx, b.Pid)
	tx.Rollback(ctx)
	when := "after publishing them, before deleting them from the outbox"
	if r.cfg.Guarantee == "at-most-once" {
		when = "deleting them before publishing (at-most-once), so nothing was published"
	}
	return fmt.Sprintf("SIGKILLed %s while its DELETE of %d+ locked outbox rows waited: %s; %s",
		b.Instance, locked, when, r.restart(ctx, rng, name, "relay")), nil
}

func killNotifier(ctx context.Context, r *runner, rng *rand.Rand) (string, error) {
	list := r.cluster.Running("notifier-")
	if len(list) == 0 {
		return "", errors.New("no notifier running")
	}
	p := list[rng.IntN(len(list))]
	if _, err := r.cluster.Kill(p.Name); err != nil {
		return "", err
	}
	return fmt.Sprintf("SIGKILLed %s at a random moment; %s", p.Instance, r.restart(ctx, rng, p.Name, "notifier")), nil
}

func killNotifierUncommitted(ctx context.Context, r *runner, rng *rand.Rand) (string, error) {
	lock := func() (pgx.Tx, error) {
		tx, err := r.db.pool.Begin(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '5s'`); err == nil {
			if _, err = tx.Exec(ctx, `LOCK TABLE inbox IN EXCLUSIVE MODE`); err == nil {
				return tx, nil
			}
		}
		tx.Rollback(ctx)
		return nil, err
	}
	// First hold the notifiers for a second, so that events pile up in the
	// topic; then let them go and lock again a moment later, in the middle
	// of the big poll they fetched: records of it are recorded, none is
	// committed.
	tx, err := lock()
	if err != nil {
		return "", err
	}
	if _, ok := r.db.waitBlocked(ctx, "%INSERT INTO inbox%", 10*time.Second); !ok {
		tx.Rollback(ctx)
		ev, err := killNotifier(ctx, r, rng)
		return "no notifier waited on the inbox in 10 s; instead " + ev, err
	}
	backoff.Sleep(ctx, time.Second)
	tx.Rollback(ctx)
	backoff.Sleep(ctx, between(rng, 10*time.Millisecond, 60*time.Millisecond))
	if tx, err = lock(); err != nil {
		return "", err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	b, ok := r.db.waitBlocked(ctx, "%INSERT INTO inbox%", 10*time.Second)
	if !ok {
		tx.Rollback(ctx)
		ev, err := killNotifier(ctx, r, rng)
		return "no notifier waited on the inbox in 10 s; instead " + ev, err
	}
	name := instanceName(b.Instance)
	p := r.cluster.Get(name)
	if p == nil || p.Instance != b.Instance {
		return "", fmt.Errorf("the waiting INSERT belongs to %q, which is not running", b.Instance)
	}
	if _, err := r.cluster.Kill(name); err != nil {
		return "", err
	}
	r.db.terminate(ctx, b.Pid)
	handled, past, err := HandledNotCommitted(ctx, r.brokers, r.topic, r.group, func(ids []string) (int, error) {
		return r.db.InboxHas(ctx, ids)
	})
	measure := fmt.Sprintf("of the %d events past the group's committed offsets, %d were recorded already (handled, not committed: read again by the next owner)", past, handled)
	if err != nil {
		measure = "could not measure the uncommitted events: " + err.Error()
	}
	tx.Rollback(ctx)
	return fmt.Sprintf("SIGKILLed %s while its inbox INSERT waited; %s; %s", b.Instance, measure, r.restart(ctx, rng, name, "notifier")), nil
}

func killNotifierAfterAccept(ctx context.Context, r *runner, rng *rand.Rand) (string, error) {
	w := r.sink.Watch()
	defer r.sink.Unwatch(w)
	r.sink.SetHold(2 * time.Second)
	defer r.sink.SetHold(0)
	timeout := time.After(15 * time.Second)
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-timeout:
			r.sink.SetHold(0)
			ev, err := killNotifier(ctx, r, rng)
			return "no message reached the SMTP server in 15 s; instead " + ev, err
		case a := <-w:
			name := instanceName(a.Instance)
			p := r.cluster.Get(name)
			if p == nil || p.Instance != a.Instance || p.Exited() {
				continue
			}
			if _, err := r.cluster.Kill(name); err != nil {
				return "", err
			}
			r.sink.SetHold(0)
			return fmt.Sprintf("SIGKILLed %s %s after the server accepted <%s> and held its reply: sent, not marked sent; %s",
				a.Instance, time.Since(a.At).Round(time.Millisecond), a.MessageID, r.restart(ctx, rng, name, "notifier")), nil
		}
	}
}

func restartPostgres(ctx context.Context, r *runner, rng *rand.Rand) (string, error) {
	start := time.Now()
	if err := r.svc.RestartPostgres(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("pg_ctl restart -m immediate: accepting connections again after %.1fs", time.Since(start).Seconds()), nil
}

func smtpMode(mode SinkMode, minSec, maxSec int) func(context.Context, *runner, *rand.Rand) (string, error) {
	return func(ctx context.Context, r *runner, rng *rand.Rand) (string, error) {
		d := between(rng, time.Duration(minSec)*time.Second, time.Duration(maxSec)*time.Second)
		before := r.sink.Count()
		if err := r.sink.SetMode(mode, 150*time.Millisecond); err != nil {
			return "", err
		}
		backoff.Sleep(ctx, d)
		if err := r.sink.SetMode(SinkUp, 0); err != nil {
			return "", err
		}
		return fmt.Sprintf("SMTP %s for %.1fs (%d messages accepted meanwhile)", mode, d.Seconds(), r.sink.Count()-before), nil
	}
}

func rebalance(ctx context.Context, r *runner, rng *rand.Rand) (string, error) {
	p, err := r.cluster.StartRetry(ctx, "notifier-3", "notifier", 3*time.Minute)
	if err != nil {
		return "", err
	}
	d := between(rng, 3*time.Second, 6*time.Second)
	backoff.Sleep(ctx, d)
	if err := r.cluster.Stop("notifier-3"); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s joined the group and left it (SIGTERM) %.1fs later: two rebalances", p.Instance, d.Seconds()), nil
}

func injectDuplicates(ctx context.Context, r *runner, rng *rand.Rand) (string, error) {
	n, orders, err := ProduceCopies(ctx, r.brokers, r.topic, rng, 10)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	r.injected += n
	r.mu.Unlock()
	return fmt.Sprintf("produced again %d records of %d orders", n, orders), nil
}

func injectPoison(ctx context.Context, r *runner, rng *rand.Rand) (string, error) {
	r.mu.Lock()
	first := r.poison
	r.poison += 4
	r.mu.Unlock()
	if err := ProducePoison(ctx, r.brokers, r.topic, rng, first, 4); err != nil {
		return "", err
	}
	return "produced 4 poison records", nil
}
