package ddbfront

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/flowgate/flowgate/internal/devstack/ddbstream"
)

// ttlHorizon: AWS leaves items whose TTL is more than five years past.
const ttlHorizon = 5 * 365 * 24 * time.Hour

type ttlSpec struct {
	AttributeName string
	Enabled       bool
}

func (f *Front) updateTimeToLive(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		TableName               string
		TimeToLiveSpecification *ttlSpec
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, apiErr("SerializationException", "%v", err))
		return
	}
	spec := req.TimeToLiveSpecification
	if spec == nil || spec.AttributeName == "" || len(spec.AttributeName) > 255 {
		writeError(w, apiErr("ValidationException", "TimeToLiveSpecification needs an AttributeName of 1 to 255 characters"))
		return
	}
	t, err := f.table(r.Context(), req.TableName)
	if err != nil {
		writeError(w, err)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case spec.Enabled && t.ttl != "":
		writeError(w, apiErr("ValidationException", "TimeToLive is already enabled"))
		return
	case !spec.Enabled && t.ttl == "":
		writeError(w, apiErr("ValidationException", "TimeToLive is already disabled"))
		return
	case !spec.Enabled && t.ttl != spec.AttributeName:
		writeError(w, apiErr("ValidationException", "TimeToLive is enabled on attribute %s, not %s", t.ttl, spec.AttributeName))
		return
	}
	if spec.Enabled {
		t.ttl = spec.AttributeName
	} else {
		t.ttl = ""
	}
	writeJSON(w, map[string]any{"TimeToLiveSpecification": spec})
}

func (f *Front) describeTimeToLive(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct{ TableName string }
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, apiErr("SerializationException", "%v", err))
		return
	}
	t, err := f.table(r.Context(), req.TableName)
	if err != nil {
		writeError(w, err)
		return
	}
	f.mu.Lock()
	attr := t.ttl
	f.mu.Unlock()
	desc := map[string]string{"TimeToLiveStatus": "DISABLED"}
	if attr != "" {
		desc = map[string]string{"TimeToLiveStatus": "ENABLED", "AttributeName": attr}
	}
	writeJSON(w, map[string]any{"TimeToLiveDescription": desc})
}

// Run sweeps for expired items every Options.TTLInterval until ctx is done.
func (f *Front) Run(ctx context.Context) {
	t := time.NewTicker(f.opt.TTLInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := f.SweepTTL(ctx); err != nil && ctx.Err() == nil {
			f.opt.Log.Warn("ddbfront: TTL sweep failed", "err", err)
		}
	}
}

// SweepTTL deletes, now, every item of a TTL-enabled table whose expiry lies
// more than Options.TTLDelay in the past, and returns how many it deleted.
func (f *Front) SweepTTL(ctx context.Context) (int, error) {
	// The TTL attribute is read under the lock: UpdateTimeToLive may change
	// it meanwhile. A table's key schema never changes.
	f.mu.Lock()
	attrs := map[string]string{}
	infos := map[string]*tableInfo{}
	for name, t := range f.tables {
		if t.ttl != "" {
			attrs[name], infos[name] = t.ttl, t
		}
	}
	f.mu.Unlock()
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	deleted := 0
	for _, name := range names {
		n, err := f.sweepTable(ctx, name, infos[name], attrs[name])
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// due reports whether an item with TTL value v (epoch seconds) may be
// deleted at now.
func (f *Front) due(v json.RawMessage, now time.Time) bool {
	var n struct{ N *string }
	if json.Unmarshal(v, &n) != nil || n.N == nil {
		return false
	}
	exp, err := strconv.ParseFloat(*n.N, 64)
	if err != nil || math.IsNaN(exp) || exp < 0 || exp > 1e10 { // not a time this millennium
		return false
	}
	at := time.Unix(0, 0).Add(time.Duration(exp * float64(time.Second)))
	return now.After(at.Add(f.opt.TTLDelay)) && now.Sub(at) <= ttlHorizon
}

func (f *Front) sweepTable(ctx context.Context, name string, t *tableInfo, attr string) (int, error) {
	now := f.opt.Now()
	cut := now.Add(-f.opt.TTLDelay)
	in := map[string]any{
		"TableName":                 name,
		"ConsistentRead":            true,
		"FilterExpression":          "#ttl < :cut AND #ttl >= :floor",
		"ExpressionAttributeNames":  map[string]string{"#ttl": attr},
		"ExpressionAttributeValues": map[string]any{":cut": num(cut.Unix() + 1), ":floor": num(now.Add(-ttlHorizon).Unix() - 1)},
	}
	deleted := 0
	for {
		var out struct {
			Items            []ddbstream.Item
			LastEvaluatedKey ddbstream.Item
		}
		if err := f.call(ctx, "Scan", in, &out); err != nil {
			if isCode(err, "ResourceNotFoundException") { // deleted meanwhile
				f.forget(name)
				return deleted, nil
			}
			return deleted, fmt.Errorf("ddbfront: TTL scan of %s: %w", name, err)
		}
		for _, it := range out.Items {
			if key := keyOf(t, it); key != nil {
				ok, err := f.expire(ctx, name, attr, key)
				if err != nil {
					return deleted, err
				}
				if ok {
					deleted++
				}
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return deleted, nil
		}
		in["ExclusiveStartKey"] = out.LastEvaluatedKey
	}
}

func num(n int64) map[string]string { return map[string]string{"N": strconv.FormatInt(n, 10)} }

// expire deletes one item if, read under its lock, it is still due, and
// records the REMOVE as TTL's.
func (f *Front) expire(ctx context.Context, table, attr string, key ddbstream.Item) (bool, error) {
	f.ttlHook("scanned")
	unlock := f.locks.lock([]string{itemID(table, key)})
	defer unlock()
	before, err := f.getItem(ctx, table, key)
	if err != nil || before == nil || !f.due(before[attr], f.opt.Now()) {
		return false, err
	}
	f.ttlHook("read")
	err = f.call(ctx, "DeleteItem", map[string]any{
		"TableName": table, "Key": key,
		// Against a writer that went around the front.
		"ConditionExpression":       "#ttl = :v",
		"ExpressionAttributeNames":  map[string]string{"#ttl": attr},
		"ExpressionAttributeValues": map[string]json.RawMessage{":v": before[attr]},
	}, nil)
	if isCode(err, "ConditionalCheckFailedException") {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ddbfront: TTL delete in %s: %w", table, err)
	}
	if st := f.streams.Current(table); st != nil {
		if err := f.record(ctx, change{st: st, table: table, key: key, before: before}, ddbstream.ServiceIdentity); err != nil {
			return true, err
		}
	}
	return true, nil
}
