package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/platform/platform"
	"github.com/platform/platform/queues"
)

func runPublish(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	var cfg config
	fs := newFlagSet("publish", "[FILE|-]")
	cfg.register(fs, false)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usagef("want at most one FILE, got %d", fs.NArg())
	}
	data, err := readInput(fs.Arg(0), stdin)
	if err != nil {
		return err
	}
	events, err := parseEvents(data)
	if err != nil {
		return usageError{err}
	}
	ns, err := cfg.ns()
	if err != nil {
		return err
	}
	acct, err := cfg.account()
	if err != nil {
		return err
	}
	client, err := queues.New(acct, ns)
	if err != nil {
		return err
	}
	maxPayload, err := positiveEnv("PLATFORM_MAX_PAYLOAD_BYTES")
	if err != nil {
		return err
	}
	client.Blobs().SetMaxPayloadBytes(maxPayload)
	shards, err := queueShardsEnv()
	if err != nil {
		return err
	}
	if err := client.SetShards(shards); err != nil {
		return err
	}
	tracing, stopTracing, err := startTracing(ctx, "publish", nil)
	if err != nil {
		return err
	}
	defer stopTracingSoon(stopTracing)
	client.SetTracerProvider(tracing.Provider) // each event's publish starts its trace
	for _, e := range events {
		if err := client.Blobs().CheckPayloadSize(len(e.event.Payload)); err != nil {
			return usagef("line %d: payload: %v", e.line, err)
		}
	}
	// Every event was checked before the first is sent; a failure now is the storage's, and
	// the message says exactly how far the batch got.
	for i, e := range events {
		key, err := client.Publish(ctx, e.event)
		if err != nil {
			return fmt.Errorf("published %d of %d events; the event at line %d was not: %w", i, len(events), e.line, err)
		}
		fmt.Fprintln(stdout, clean(key))
	}
	return nil
}

func readInput(name string, stdin io.Reader) ([]byte, error) {
	if name == "" || name == "-" {
		return io.ReadAll(stdin)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, usageError{err}
	}
	return data, nil
}

type lineEvent struct {
	line  int
	event *platform.EntityEvent
}

// parseEvents reads a JSON object, a JSON array of objects, or JSON lines, and checks every
// event. The first bad one is reported with its line, and nothing is returned: a batch is
// published whole or not at all.
func parseEvents(data []byte) ([]lineEvent, error) {
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:off], []byte("\n")) }
	// start skips what separates values, so a line number points at the value itself.
	start := func(off int64) int64 {
		for off < int64(len(data)) && bytes.IndexByte([]byte(" \t\r\n,"), data[off]) >= 0 {
			off++
		}
		return off
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("no events in input")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	inArray := trimmed[0] == '['
	if inArray {
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
	}
	var out []lineEvent
	for {
		if inArray && !dec.More() {
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("line %d: %v", lineAt(start(dec.InputOffset())), err)
			}
			if _, err := dec.Token(); err != io.EOF {
				return nil, fmt.Errorf("line %d: unexpected data after the array", lineAt(start(dec.InputOffset())))
			}
			break
		}
		off := start(dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if err == io.EOF && !inArray {
				break
			}
			return nil, fmt.Errorf("line %d: invalid JSON: %v", lineAt(off), err)
		}
		ev, err := platform.DecodeEvent(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", lineAt(off), err)
		}
		out = append(out, lineEvent{line: lineAt(off), event: ev})
	}
	if len(out) == 0 {
		return nil, errors.New("no events in input")
	}
	return out, nil
}
