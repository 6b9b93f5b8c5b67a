package postgres

import (
	"context"
	"log/slog"
	"time"
)

// announcer tells the relays, in this process and in others, that events
// were committed to the outbox, by a NOTIFY on commitChannel sent after the
// commits rather than inside their transactions.
//
// A transaction that notifies takes, as it commits, PostgreSQL's lock on
// the database's notification queue, so such transactions commit one at a
// time and lose group commit: order intake ran at a third of the rate of
// the same transaction without NOTIFY (docs/performance.md). Here each
// commit only marks that there is news; one NOTIFY at a time goes out on
// its own, covering every commit marked before it started.
//
// A process that dies between a commit and its NOTIFY leaves the relays to
// find the events at their next poll (EVENTFLOW_RELAY_POLL_INTERVAL).
type announcer struct {
	news chan struct{} // holds one value while a NOTIFY is owed
	stop context.CancelFunc
	done chan struct{}
}

func (db *DB) startAnnouncer() {
	ctx, stop := context.WithCancel(context.Background())
	db.announce = &announcer{news: make(chan struct{}, 1), stop: stop, done: make(chan struct{})}
	go db.announceCommits(ctx)
}

// announceTimeout bounds one NOTIFY; a failed one is not retried, as the
// relays' polling finds what it announced.
const announceTimeout = 5 * time.Second

func (db *DB) announceCommits(ctx context.Context) {
	defer close(db.announce.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-db.announce.news:
		}
		notifyCtx, cancel := context.WithTimeout(ctx, announceTimeout)
		_, err := db.pool.Exec(notifyCtx, `SELECT pg_notify('`+commitChannel+`', '')`)
		cancel()
		if err != nil && ctx.Err() == nil {
			slog.Debug("outbox: could not announce commits; the relays will poll", "err", err)
		}
	}
}

// committed marks that events were committed to the outbox.
func (db *DB) committed() {
	select {
	case db.announce.news <- struct{}{}:
	default: // a NOTIFY is owed already and will cover this commit
	}
}

func (db *DB) stopAnnouncer() {
	db.announce.stop()
	<-db.announce.done
}
