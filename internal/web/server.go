package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ServerConfig holds the timeouts of an HTTP server. Zero values take the
// defaults below.
type ServerConfig struct {
	Addr            string
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	IdleTimeout     time.Duration
	ShutdownTimeout time.Duration
}

// Serve listens on cfg.Addr and serves h until ctx is done, then drains
// in-flight requests for up to cfg.ShutdownTimeout. A clean shutdown returns
// nil.
func Serve(ctx context.Context, cfg ServerConfig, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	return ServeListener(ctx, cfg, ln, h, log)
}

// ServeListener is Serve on an already bound listener.
func ServeListener(ctx context.Context, cfg ServerConfig, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       orDefault(cfg.ReadTimeout, 15*time.Second),
		WriteTimeout:      orDefault(cfg.WriteTimeout, 30*time.Second),
		IdleTimeout:       orDefault(cfg.IdleTimeout, 120*time.Second),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() {
		log.Info("http server listening", "addr", ln.Addr().String())
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), orDefault(cfg.ShutdownTimeout, 10*time.Second))
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("http server stopped")
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
