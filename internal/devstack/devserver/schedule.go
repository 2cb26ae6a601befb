package devserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/shared/redrive"
)

// RedriveStats add up the re-drive runs' reports.
type RedriveStats struct {
	Runs   int `json:"runs"`
	Errors int `json:"errors"` // runs that failed (the function's error)
	redrive.Report
}

// schedule invokes the re-drive function every RedriveInterval, as the
// template's Schedule event does (every 5 minutes on AWS), with
// EventBridge's scheduled event, until ctx ends. Like a schedule, the first
// run is one interval after the start; runs never overlap (the template
// reserves a concurrency of 1).
func (s *Stack) schedule(ctx context.Context) {
	t := time.NewTicker(s.settings.RedriveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.redriveOnce(ctx, now)
		}
	}
}

// RunRedrive invokes the re-drive function now, as its schedule would, and
// returns its report.
func (s *Stack) RunRedrive(ctx context.Context) (redrive.Report, error) {
	return s.redriveOnce(ctx, time.Now())
}

func (s *Stack) redriveOnce(ctx context.Context, now time.Time) (redrive.Report, error) {
	out, err := s.redrive.invoke(ctx, scheduledEvent(now))
	var rep redrive.Report
	if err == nil {
		err = json.Unmarshal(out, &rep)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redrove.Runs++
	if err != nil {
		s.redrove.Errors++
		if ctx.Err() == nil {
			s.log.Warn("re-drive run failed", "err", err)
		}
		return rep, err
	}
	s.redrove.Replayed += rep.Replayed
	s.redrove.Dropped += rep.Dropped
	s.redrove.Owed += rep.Owed
	s.redrove.Driven += rep.Driven
	s.redrove.Failed += rep.Failed
	s.redrove.Postponed += rep.Postponed
	s.redrove.CountingReport.Replayed += rep.CountingReport.Replayed
	s.redrove.Checked += rep.Checked
	s.redrove.Recounted += rep.Recounted
	return rep, nil
}

// scheduledEvent is what an EventBridge schedule rule sends a function.
func scheduledEvent(now time.Time) []byte {
	id := make([]byte, 16)
	rand.Read(id)
	h := hex.EncodeToString(id)
	ev := map[string]any{
		"version": "0", "id": h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:],
		"detail-type": "Scheduled Event", "source": "aws.events", "account": "000000000000",
		"time": now.UTC().Format(time.RFC3339), "region": localaws.Region,
		"resources": []string{"arn:aws:events:" + localaws.Region + ":000000000000:rule/flowgate-dev-redrive"},
		"detail":    map[string]any{},
	}
	b, _ := json.Marshal(ev)
	return b
}
