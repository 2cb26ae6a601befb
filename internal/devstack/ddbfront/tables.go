package ddbfront

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/flowgate/flowgate/internal/devstack/ddbstream"
)

// tableInfo is what the front knows of a table besides what dynalite keeps.
type tableInfo struct {
	keys []ddbstream.KeyElement
	ttl  string // the TTL attribute while TTL is enabled, else ""
}

type streamSpec struct {
	StreamEnabled  bool
	StreamViewType string `json:",omitempty"`
}

// table returns what the front knows of name, asking dynalite for its key
// schema the first time.
func (f *Front) table(ctx context.Context, name string) (*tableInfo, error) {
	f.mu.Lock()
	t := f.tables[name]
	f.mu.Unlock()
	if t != nil {
		return t, nil
	}
	var out struct {
		Table struct{ KeySchema []ddbstream.KeyElement }
	}
	if err := f.call(ctx, "DescribeTable", map[string]string{"TableName": name}, &out); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if t = f.tables[name]; t == nil {
		t = &tableInfo{keys: out.Table.KeySchema}
		f.tables[name] = t
	}
	return t, nil
}

func (f *Front) forget(name string) {
	f.mu.Lock()
	delete(f.tables, name)
	f.mu.Unlock()
}

// takeStreamSpec removes StreamSpecification from a request body (dynalite
// does not keep it) and returns it, or nil if there was none.
func takeStreamSpec(req map[string]json.RawMessage) (*streamSpec, error) {
	raw, ok := req["StreamSpecification"]
	if !ok {
		return nil, nil
	}
	delete(req, "StreamSpecification")
	var spec streamSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, apiErr("SerializationException", "StreamSpecification: %v", err)
	}
	if spec.StreamEnabled && !ddbstream.ValidView(spec.StreamViewType) {
		return nil, apiErr("ValidationException", "StreamSpecification: StreamViewType %q: must be one of KEYS_ONLY, NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES", spec.StreamViewType)
	}
	return &spec, nil
}

// withStream adds the table's stream (if it has one enabled) to a table
// description, as AWS describes it.
func (f *Front) withStream(desc json.RawMessage) json.RawMessage {
	var d map[string]json.RawMessage
	if json.Unmarshal(desc, &d) != nil {
		return desc
	}
	var name string
	json.Unmarshal(d["TableName"], &name)
	st := f.streams.Current(name)
	if st == nil {
		return desc
	}
	d["StreamSpecification"], _ = json.Marshal(streamSpec{StreamEnabled: true, StreamViewType: st.View})
	d["LatestStreamArn"], _ = json.Marshal(st.ARN)
	d["LatestStreamLabel"], _ = json.Marshal(st.Label)
	out, _ := json.Marshal(d)
	return out
}

// rewriteDescription applies withStream to the description under field
// ("Table" or "TableDescription") of a successful response.
func (f *Front) rewriteDescription(resp *response, field string) {
	if resp.status != http.StatusOK {
		return
	}
	var body map[string]json.RawMessage
	if json.Unmarshal(resp.body, &body) != nil || body[field] == nil {
		return
	}
	body[field] = f.withStream(body[field])
	b, _ := json.Marshal(body)
	resp.rewrite(b)
}

func (f *Front) createTable(w http.ResponseWriter, r *http.Request, body []byte) {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		f.forward(w, r, body) // dynalite words the complaint
		return
	}
	spec, err := takeStreamSpec(req)
	if err != nil {
		writeError(w, err)
		return
	}
	stripped, _ := json.Marshal(req)
	resp, err := f.send(r.Context(), r, stripped)
	if err != nil {
		writeError(w, err)
		return
	}
	if resp.status == http.StatusOK {
		var out struct {
			TableDescription struct {
				TableName string
				KeySchema []ddbstream.KeyElement
			}
		}
		json.Unmarshal(resp.body, &out)
		name := out.TableDescription.TableName
		// A table made anew has no TTL and no stream of its old self.
		f.forget(name)
		f.streams.Disable(name)
		if spec != nil && spec.StreamEnabled {
			if _, err := f.streams.Enable(name, spec.StreamViewType, out.TableDescription.KeySchema); err != nil {
				writeError(w, err)
				return
			}
		}
		f.rewriteDescription(resp, "TableDescription")
	}
	resp.write(w)
}

func (f *Front) describeTable(w http.ResponseWriter, r *http.Request, body []byte) {
	resp, err := f.send(r.Context(), r, body)
	if err != nil {
		writeError(w, err)
		return
	}
	f.rewriteDescription(resp, "Table")
	resp.write(w)
}

func (f *Front) deleteTable(w http.ResponseWriter, r *http.Request, body []byte) {
	resp, err := f.send(r.Context(), r, body)
	if err != nil {
		writeError(w, err)
		return
	}
	if resp.status == http.StatusOK {
		var out struct{ TableDescription struct{ TableName string } }
		json.Unmarshal(resp.body, &out)
		f.rewriteDescription(resp, "TableDescription")
		f.streams.Disable(out.TableDescription.TableName)
		f.forget(out.TableDescription.TableName)
	}
	resp.write(w)
}

// updateTable turns a stream on or off; anything else in the request goes
// to dynalite.
func (f *Front) updateTable(w http.ResponseWriter, r *http.Request, body []byte) {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		f.forward(w, r, body)
		return
	}
	spec, err := takeStreamSpec(req)
	if err != nil {
		writeError(w, err)
		return
	}
	if spec == nil {
		resp, err := f.send(r.Context(), r, body)
		if err != nil {
			writeError(w, err)
			return
		}
		f.rewriteDescription(resp, "TableDescription")
		resp.write(w)
		return
	}
	var name string
	json.Unmarshal(req["TableName"], &name)
	t, err := f.table(r.Context(), name)
	if err != nil {
		writeError(w, err)
		return
	}
	cur := f.streams.Current(name)
	switch {
	case spec.StreamEnabled && cur != nil:
		writeError(w, apiErr("ValidationException", "Table already has an enabled stream: TableName: %s", name))
		return
	case !spec.StreamEnabled && cur == nil:
		writeError(w, apiErr("ValidationException", "Table does not have a stream enabled: TableName: %s", name))
		return
	}
	var resp *response
	if len(req) > 1 { // more than the table name: dynalite updates the rest
		stripped, _ := json.Marshal(req)
		if resp, err = f.send(r.Context(), r, stripped); err != nil {
			writeError(w, err)
			return
		}
		if resp.status != http.StatusOK {
			resp.write(w)
			return
		}
	}
	if spec.StreamEnabled {
		if _, err := f.streams.Enable(name, spec.StreamViewType, t.keys); err != nil {
			writeError(w, err)
			return
		}
	} else {
		f.streams.Disable(name)
	}
	if resp != nil {
		f.rewriteDescription(resp, "TableDescription")
		resp.write(w)
		return
	}
	var out struct{ Table json.RawMessage }
	if err := f.call(r.Context(), "DescribeTable", map[string]string{"TableName": name}, &out); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, map[string]json.RawMessage{"TableDescription": f.withStream(out.Table)})
}
