package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/platform/platform/internal/lifecycle"
	"github.com/platform/platform/settings"
)

// settingsDB is the settings database as a lifecycle piece: opened at start, closed at stop,
// and read by the notification stages in between, through a cache of options and subscribers
// (settings.Cache: Config.SettingsCacheTTL, dropped on settings.SignalTopic).
type settingsDB struct {
	dsn   string
	mu    sync.RWMutex
	db    *settings.DB
	cache *settings.Cache
}

func newSettingsDB(dsn string, ttl time.Duration) *settingsDB {
	s := &settingsDB{dsn: dsn}
	s.cache = settings.NewCache(uncachedSettings{s}, ttl)
	return s
}

// uncachedSettings reads the open database itself: the cache's source.
type uncachedSettings struct{ s *settingsDB }

func (u uncachedSettings) Option(ctx context.Context, businessUnitID int64, notificationTypeID int) (settings.Option, error) {
	db, err := u.s.open()
	if err != nil {
		return settings.Option{}, err
	}
	return db.Option(ctx, businessUnitID, notificationTypeID)
}

func (u uncachedSettings) Subscribers(ctx context.Context, businessUnitID int64, notificationTypeID int) ([]settings.Subscriber, error) {
	db, err := u.s.open()
	if err != nil {
		return nil, err
	}
	return db.Subscribers(ctx, businessUnitID, notificationTypeID)
}

var errSettingsClosed = errors.New("settings database not open (the worker is not running)")

func (s *settingsDB) Start(ctx context.Context) error {
	db, err := settings.Open(ctx, s.dsn)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.db = db
	s.mu.Unlock()
	return nil
}

func (s *settingsDB) Stop(context.Context) error {
	s.mu.Lock()
	db := s.db
	s.db = nil
	s.mu.Unlock()
	s.cache.Invalidate() // what a database that is no longer open said
	if db == nil {
		return nil
	}
	return db.Close()
}

func (s *settingsDB) open() (*settings.DB, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, errSettingsClosed
	}
	return s.db, nil
}

func (s *settingsDB) Option(ctx context.Context, businessUnitID int64, notificationTypeID int) (settings.Option, error) {
	return s.cache.Option(ctx, businessUnitID, notificationTypeID)
}

func (s *settingsDB) Subscribers(ctx context.Context, businessUnitID int64, notificationTypeID int) ([]settings.Subscriber, error) {
	return s.cache.Subscribers(ctx, businessUnitID, notificationTypeID)
}

// changed drops the cached settings: the database changed (settings.SignalTopic).
func (s *settingsDB) changed(context.Context) { s.cache.Invalidate() }

func (s *settingsDB) UnitOptions(ctx context.Context, businessUnitID int64) ([]settings.UnitOption, error) {
	db, err := s.open()
	if err != nil {
		return nil, err
	}
	return db.UnitOptions(ctx, businessUnitID)
}

func (s *settingsDB) UnitSubscribers(ctx context.Context, businessUnitID int64, limit int) ([]settings.UnitSubscriber, bool, error) {
	db, err := s.open()
	if err != nil {
		return nil, false, err
	}
	return db.UnitSubscribers(ctx, businessUnitID, limit)
}

func (s *settingsDB) Ping(ctx context.Context) error {
	db, err := s.open()
	if err != nil {
		return err
	}
	return db.Ping(ctx)
}

// httpServer is the HTTP API's server as a lifecycle piece. It binds at start (a port in use
// fails the start before any message is consumed) and shuts down last, with a deadline of its
// own: the worker's stop may have used all of its time by then.
type httpServer struct {
	addr     string
	handler  http.Handler
	shutdown time.Duration
	timeout  time.Duration // reading a request, writing its answer
	log      logrus.FieldLogger

	srv     *http.Server
	ln      net.Listener
	serving *lifecycle.Task
}

func (h *httpServer) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	h.ln = ln
	h.srv = &http.Server{Handler: h.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: h.timeout,
		WriteTimeout: h.timeout, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	h.serving = lifecycle.Go("http server", func(context.Context) {
		// Serve returns when Stop shuts the server down.
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.WithError(err).Error("http server stopped")
		}
	})
	return h.serving.Start(ctx)
}

func (h *httpServer) Stop(ctx context.Context) error {
	if h.srv == nil {
		return nil
	}
	// The server's deadline is its own: the worker's may be spent by the time it stops. But a
	// stop cancelled outright (a second signal) cuts the shutdown short too.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.shutdown)
	defer cancel()
	defer context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			cancel()
		}
	})()
	var err error
	if serr := h.srv.Shutdown(shutdownCtx); serr != nil {
		_ = h.srv.Close()
		err = fmt.Errorf("http: requests still open when the shutdown ended were cut off: %w", lifecycle.ErrAbandoned)
		h.log.WithError(serr).Warn("http shutdown deadline passed: closed the connections still open")
	}
	return errors.Join(err, h.serving.Stop(shutdownCtx))
}

// Addr is the address the server listens on.
func (h *httpServer) Addr() string {
	if h.ln == nil {
		return ""
	}
	return h.ln.Addr().String()
}
