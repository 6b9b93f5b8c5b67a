package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventflow/eventflow/kafka"
)

func sortStrings(s []string) { sort.Strings(s) }

// eventIDs are the ids of the events among recs.
func eventIDs(recs []*kgo.Record) []string {
	seen := map[string]bool{}
	var ids []string
	for _, r := range recs {
		if strings.HasPrefix(string(r.Key), PoisonPrefix) {
			continue
		}
		if e, err := kafka.DecodeRecord(r); err == nil && !seen[e.ID] {
			seen[e.ID] = true
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// Print writes the report of one run.
func (rep *Report) Print(w io.Writer, replay string) {
	c := rep.Config
	fmt.Fprintf(w, "\n=== eventflow chaos run %s: scenario %s, seed %d, guarantee %s\n", rep.Run, c.Scenario, c.Seed, c.Guarantee)
	fmt.Fprintf(w, "replay: %s\n", replay)
	l := rep.Load
	fmt.Fprintf(w, "--- stream: %d orders planned, %d created, %d abandoned after failed requests; %d requests, %d failed, %d retried; %.0fs; %d subscriptions\n",
		l.Planned, l.Created, l.Abandoned, l.Requests, l.Failed, l.Retried, l.StreamSeconds, l.SubscriptionsCount)
	fmt.Fprintf(w, "--- faults (%d):\n", len(rep.Faults))
	for _, f := range rep.Faults {
		text := f.Evidence
		if f.Err != nil {
			text = "ERROR: " + f.Err.Error()
		}
		fmt.Fprintf(w, "  %6.1fs-%6.1fs  %-27s %s\n", f.Start.Seconds(), f.End.Seconds(), f.Name, text)
	}
	if rep.Result == nil {
		fmt.Fprintln(w, "--- no result")
		return
	}
	k, m := rep.Result.Kafka, rep.Result.Mail
	fmt.Fprintf(w, "--- kafka, the orders topic read_committed: %d events committed; %d records (+%d poison); %d unique; lost %d; duplicated %d (+%d injected copies); reordered %d; phantom %d\n",
		k.Committed, k.Records, k.Poison, k.Unique, k.Lost, k.Duplicated, k.Injected, k.Reordered, k.Phantom)
	fmt.Fprintf(w, "--- notifications: %d expected; %d delivered; lost %d (%d with the event in Kafka); %d messages accepted by the SMTP sink; duplicated %d (%d unexplained); reordered %d; unwanted %d; dead %d; pending %d\n",
		m.Expected, m.Delivered, m.Lost, m.LostWithEvent, m.Accepted, m.Duplicated, m.Unexplained, m.Reordered, m.Unwanted, m.Dead, m.Pending)
	fmt.Fprintf(w, "    time from an event to its first email: p50 %s, p99 %s, max %s\n",
		m.Latency[0].Round(time.Millisecond), m.Latency[1].Round(time.Millisecond), m.Latency[2].Round(time.Millisecond))
	for _, line := range rep.Info {
		fmt.Fprintf(w, "    %s\n", line)
	}
	fmt.Fprintln(w, "--- invariants:")
	for _, inv := range rep.Result.Invariants {
		status := "PASS"
		switch {
		case !inv.OK && inv.Expected:
			status = "LOSS" // allowed by at-most-once
		case !inv.OK:
			status = "FAIL"
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", status, inv.Name, inv.Detail)
	}
	if len(rep.Result.Samples) > 0 {
		fmt.Fprintln(w, "--- examples:")
		kinds := make([]string, 0, len(rep.Result.Samples))
		for kind := range rep.Result.Samples {
			kinds = append(kinds, kind)
		}
		sort.Strings(kinds)
		for _, kind := range kinds {
			for _, s := range rep.Result.Samples[kind] {
				fmt.Fprintf(w, "  %-18s %s\n", kind, s)
			}
		}
	}
	for _, e := range rep.HarnessErr {
		fmt.Fprintf(w, "  HARNESS ERROR  %s\n", e)
	}
	verdict := "PASS"
	if rep.Failed() {
		verdict = "FAIL (logs kept in " + rep.LogDir + ")"
	}
	fmt.Fprintf(w, "verdict: %s in %.0fs\n", verdict, rep.Duration.Seconds())
}

// PrintTable writes the delivery-guarantee table of runs, one per guarantee.
func PrintTable(w io.Writer, reps []*Report) {
	fmt.Fprintln(w, "| guarantee | events committed | lost in Kafka | duplicated in Kafka | reordered in Kafka | emails expected | emails lost | duplicate emails (all same Message-ID, explained) | unexplained duplicates | reordered emails | verdict |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, rep := range reps {
		if rep.Result == nil {
			fmt.Fprintf(w, "| `%s` | run failed | | | | | | | | | |\n", rep.Config.Guarantee)
			continue
		}
		k, m := rep.Result.Kafka, rep.Result.Mail
		verdict := "pass"
		if rep.Failed() {
			verdict = "FAIL"
		} else if k.Lost > 0 {
			verdict = "pass (loses, as at-most-once may)"
		}
		fmt.Fprintf(w, "| `%s` | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s |\n",
			rep.Config.Guarantee, k.Committed, k.Lost, k.Duplicated, k.Reordered, m.Expected, m.Lost, m.Duplicated-m.Unexplained, m.Unexplained, m.Reordered, verdict)
	}
}
