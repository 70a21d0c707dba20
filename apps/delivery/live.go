package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrikam/dronedelivery/internal/web"
)

// liveConfig tunes the /live stream.
type liveConfig struct {
	// Poll is how often the stream reads the delivery. The stream reads the
	// store rather than listening to this process's subscription handler,
	// so it follows the delivery whichever replica applies the reports.
	Poll time.Duration
	// KeepAlive is the longest silence on a stream: a comment line then
	// keeps proxies from closing it as idle.
	KeepAlive time.Duration
	// WriteWindow is how long one write to the client may take. The server
	// gives a whole response WriteTimeout (30s); a stream lives longer, so
	// each write gets its own deadline instead.
	WriteWindow time.Duration
}

func (c liveConfig) withDefaults() liveConfig {
	if c.Poll <= 0 {
		c.Poll = 500 * time.Millisecond
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 15 * time.Second
	}
	if c.WriteWindow <= 0 {
		c.WriteWindow = 10 * time.Second
	}
	return c
}

// handleLive streams the delivery as Server-Sent Events until it ends:
//
//	event: stage   one per stage change, in order, with the transition as
//	               data and its sequence number as the event id
//	event: status  the public status, whenever it changes
//	event: end     the delivery has ended; the server closes the stream
//
// A client reconnecting with Last-Event-ID gets the stage changes after that
// one; without it, every stage change from the first, so a client that
// connects late still sees them all.
func (a *api) handleLive() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := mux.Vars(r)["id"]
		cfg := a.live.withDefaults()
		d, _, found, err := a.store.Get(ctx, key(id))
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
			return
		case !found:
			web.WriteProblem(w, r, web.NotFound("no delivery "+id))
			return
		}
		sent, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
		rc := http.NewResponseController(w)
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		// Tells nginx-style proxies not to buffer the stream.
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)

		s := &sseWriter{w: w, rc: rc, window: cfg.WriteWindow}
		var lastStatus []byte
		poll := time.NewTicker(cfg.Poll)
		defer poll.Stop()
		keepAlive := time.NewTimer(cfg.KeepAlive)
		defer keepAlive.Stop()
		for {
			for _, tr := range d.Transitions {
				if tr.Seq > sent {
					s.event("stage", strconv.Itoa(tr.Seq), tr)
					sent = tr.Seq
				}
			}
			if st, err := json.Marshal(statusOf(d)); err == nil && !bytes.Equal(st, lastStatus) {
				s.raw("status", "", st)
				lastStatus = st
			}
			if d.Stage.Final() {
				s.raw("end", "", []byte(`{"stage":`+strconv.Quote(string(d.Stage))+`}`))
			}
			wrote, err := s.flush()
			if err != nil {
				a.log.DebugContext(ctx, "live stream closed by the client", "deliveryId", id, "err", err)
				return
			}
			if d.Stage.Final() {
				return
			}
			if wrote {
				keepAlive.Reset(cfg.KeepAlive)
			}
		wait:
			for {
				select {
				case <-ctx.Done():
					return
				case <-a.stop:
					return
				case <-keepAlive.C:
					s.comment("keep-alive")
					if _, err := s.flush(); err != nil {
						return
					}
					keepAlive.Reset(cfg.KeepAlive)
				case <-poll.C:
					next, found, err := a.read(ctx, id)
					if err != nil {
						a.log.WarnContext(ctx, "live stream read failed", "deliveryId", id, "err", err)
						continue
					}
					if !found {
						return
					}
					d = next
					break wait
				}
			}
		}
	})
}

func (a *api) read(ctx context.Context, id string) (Delivery, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, _, found, err := a.store.Get(ctx, key(id))
	return d, found, err
}

// sseWriter buffers Server-Sent Events and writes them out in one go, each
// write with its own deadline.
type sseWriter struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	window time.Duration
	buf    bytes.Buffer
}

func (s *sseWriter) event(name, id string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	s.raw(name, id, b)
}

// raw adds an event whose data is one line of JSON.
func (s *sseWriter) raw(name, id string, data []byte) {
	fmt.Fprintf(&s.buf, "event: %s\n", name)
	if id != "" {
		fmt.Fprintf(&s.buf, "id: %s\n", id)
	}
	fmt.Fprintf(&s.buf, "data: %s\n\n", data)
}

func (s *sseWriter) comment(text string) { fmt.Fprintf(&s.buf, ": %s\n\n", text) }

// flush writes what is buffered, if anything, and reports whether it wrote.
func (s *sseWriter) flush() (bool, error) {
	if s.buf.Len() == 0 {
		return false, nil
	}
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.window)); err != nil {
		return false, fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return false, err
	}
	s.buf.Reset()
	return true, s.rc.Flush()
}
