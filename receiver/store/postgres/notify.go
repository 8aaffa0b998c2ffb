package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// notifyChannel is the LISTEN/NOTIFY channel on which a replica that queued deliveries
// wakes the idle workers of the others.
const notifyChannel = "hookgate_deliveries"

// notifyEvery bounds the NOTIFYs one replica sends: a NOTIFY is cheap, but every
// transaction that sends one commits under one database-wide lock, so ingest never sends
// it itself. Deliveries queued in between ride on the next one, and polling remains the
// fallback when one is lost.
const notifyEvery = 50 * time.Millisecond

// queued tells the notifier, without waiting, that deliveries were queued.
func (s *Store) queued() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// notifyLoop sends the NOTIFYs, after the commits that queued deliveries, until ctx ends.
func (s *Store) notifyLoop(ctx context.Context) {
	defer close(s.notifierDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.notify:
		}
		sendCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _ = s.pool.Exec(sendCtx, "SELECT pg_notify($1, '')", notifyChannel)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(notifyEvery):
		}
	}
}

// Listen implements store.Listener: wake is called whenever another replica (or this
// one) queued deliveries, until ctx ends. It holds a connection of its own, outside the
// pool, and reconnects after errors (waking once then, for what it may have missed).
func (s *Store) Listen(ctx context.Context, wake func()) error {
	backoff := time.Second
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return nil
		}
		s.logListen(err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
		wake()
	}
	return nil
}

func (s *Store) listenOnce(ctx context.Context, wake func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.connConfig.Copy())
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		wake()
	}
}

func (s *Store) logListen(err error) {
	if s.onListenError != nil {
		s.onListenError(err)
	}
}
