package main

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func sample(t *testing.T) events.CloudWatchEvent {
	t.Helper()
	var ev events.CloudWatchEvent
	b, err := os.ReadFile("../../events/consumer-upload-completed.json")
	if err == nil {
		err = json.Unmarshal(b, &ev)
	}
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// The sample "Upload Completed" event is logged; an event of another kind,
// or one without the finished object, is an error (EventBridge retries it).
func TestSampleEvent(t *testing.T) {
	c, err := newHandler(func(k string) string { return map[string]string{"FLOWGATE_LOG_LEVEL": "error"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.handle(ctx, sample(t)); err != nil {
		t.Fatal(err)
	}
	other := sample(t)
	other.DetailType = "Object Created"
	if err := c.handle(ctx, other); err == nil {
		t.Error("an event of another type was taken")
	}
	empty := sample(t)
	empty.Detail = json.RawMessage(`{"uploadKey": "k"}`)
	if err := c.handle(ctx, empty); err == nil {
		t.Error("an event without bucket and key was taken")
	}
	broken := sample(t)
	broken.Detail = json.RawMessage(`"text"`)
	if err := c.handle(ctx, broken); err == nil {
		t.Error("an unreadable detail was taken")
	}
	if _, err := newHandler(func(string) string { return "loud" }); err == nil {
		t.Error("a bad log level was accepted")
	}
}
