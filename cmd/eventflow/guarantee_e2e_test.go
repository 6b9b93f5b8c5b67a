package main

import (
	"testing"

	"github.com/eventflow/eventflow/kafka"
)

// eventflow starts and publishes under each delivery guarantee with the
// default settings. (Found by the fault-injection suite: the relay's
// transactional id has a default, the publisher refuses one under any
// guarantee but exactly-once, and so at-least-once and at-most-once did not
// start at all.)
func TestEachDeliveryGuaranteeStarts(t *testing.T) {
	forEachTier(t, func(t *testing.T, tr tier) {
		for _, g := range []string{"at-most-once", "at-least-once", "exactly-once"} {
			t.Run(g, func(t *testing.T) {
				a := startApp(t, tr, map[string]string{"EVENTFLOW_DELIVERY_GUARANTEE": g})
				o := a.createOrder(t, "gus", 1200)
				recs := kafkaRecords(t, a, 1)
				e, err := kafka.DecodeRecord(recs[0])
				if err != nil || e.Subject != o.ID {
					t.Fatalf("record %v, %v; want the event of order %s", e, err, o.ID)
				}
			})
		}
	})
}
