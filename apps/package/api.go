package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrikam/dronedelivery/internal/sidecar"
	"github.com/fabrikam/dronedelivery/internal/web"
)

type store interface {
	Get(ctx context.Context, key string) (Package, string, bool, error)
	Create(ctx context.Context, key string, v Package) error
	Update(ctx context.Context, key string, fn func(v *Package, found bool) (bool, error)) (Package, error)
	Delete(ctx context.Context, key, etag string) error
}

const codePackageConflict = "package-conflict"

// maxAttempts bounds the re-reads when a write races another writer of the
// same package; more than a handful means something is wrong.
const maxAttempts = 10

type api struct {
	log   *slog.Logger
	store store
	now   func() time.Time
}

func key(id string) string { return "package:" + id }

func (a *api) routes(r *mux.Router) {
	// Internal callers (the scheduler and the supervisor, through Dapr) use
	// the forms with the id in the query. Dapr keys its circuit breakers by
	// app and method path, so with the id in the path every delivery would
	// get a breaker of its own, and none would ever protect the service.
	r.Handle("/api/packages", a.handlePut()).Methods(http.MethodPut).Queries("id", "{id}")
	r.Handle("/api/packages", a.handleDelete()).Methods(http.MethodDelete).Queries("id", "{id}")
	r.Handle("/api/packages/{id}", a.handlePut()).Methods(http.MethodPut)
	r.Handle("/api/packages/{id}", a.handleGet()).Methods(http.MethodGet)
	r.Handle("/api/packages/{id}", a.handlePatch()).Methods(http.MethodPatch)
	r.Handle("/api/packages/{id}", a.handleDelete()).Methods(http.MethodDelete)
}

// putBody is what the scheduler sends to create a package.
type putBody struct {
	Size       string  `json:"size"`
	Weight     float64 `json:"weight"`
	Tag        string  `json:"tag"`
	DeliveryID string  `json:"deliveryId"`
}

// handlePut creates the package. Repeating the same PUT is answered 200 with
// the stored record, so the scheduler can retry; a PUT that differs, above
// all one for another delivery, is a 409, because one package cannot travel
// in two deliveries and changes go through PATCH.
func (a *api) handlePut() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		var b putBody
		if p := web.DecodeJSON(w, r, &b); p != nil {
			web.WriteProblem(w, r, p)
			return
		}
		var v validator
		v.id("id", id)
		size := v.size(b.Size)
		v.weight(b.Weight)
		v.tag(b.Tag)
		v.id("deliveryId", b.DeliveryID)
		if len(v.errs) > 0 {
			web.WriteProblem(w, r, web.Validation(v.errs))
			return
		}
		now := a.now().UTC()
		p := Package{ID: id, Size: size, Weight: b.Weight, Tag: b.Tag, DeliveryID: b.DeliveryID, CreatedAt: now, UpdatedAt: now}
		// A DELETE can remove the package between a Create that conflicts
		// and the Get after it; then the Create is tried again.
		for range maxAttempts {
			err := a.store.Create(r.Context(), key(id), p)
			if err == nil {
				w.Header().Set("Location", "/api/packages/"+id)
				web.WriteJSON(w, http.StatusCreated, p)
				return
			}
			if !errors.Is(err, sidecar.ErrConflict) {
				a.storeFailed(w, r, err)
				return
			}
			cur, _, found, err := a.store.Get(r.Context(), key(id))
			switch {
			case err != nil:
				a.storeFailed(w, r, err)
			case !found:
				continue
			case cur.DeliveryID != p.DeliveryID:
				web.WriteProblem(w, r, web.NewProblem(http.StatusConflict, codePackageConflict,
					"Package belongs to another delivery", "package "+id+" is booked for delivery "+cur.DeliveryID))
			case !cur.sameAs(p):
				web.WriteProblem(w, r, web.NewProblem(http.StatusConflict, codePackageConflict,
					"Package exists with other details", "use PATCH to change package "+id))
			default:
				web.WriteJSON(w, http.StatusOK, cur)
			}
			return
		}
		a.storeFailed(w, r, errors.New("package kept changing during create"))
	})
}

func (a *api) handleGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		p, _, found, err := a.store.Get(r.Context(), key(id))
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case !found:
			web.WriteProblem(w, r, web.NotFound("no package "+id))
		default:
			web.WriteJSON(w, http.StatusOK, p)
		}
	})
}

// patchBody changes a package; nil fields stay as they are. The delivery
// cannot be changed: a package moves to another delivery only by being
// deleted and created again.
type patchBody struct {
	Size   *string  `json:"size,omitempty"`
	Weight *float64 `json:"weight,omitempty"`
	Tag    *string  `json:"tag,omitempty"`
}

func (a *api) handlePatch() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		var b patchBody
		if p := web.DecodeJSON(w, r, &b); p != nil {
			web.WriteProblem(w, r, p)
			return
		}
		var v validator
		var size string
		if b.Size != nil {
			size = v.size(*b.Size)
		}
		if b.Weight != nil {
			v.weight(*b.Weight)
		}
		if b.Tag != nil {
			v.tag(*b.Tag)
		}
		if len(v.errs) > 0 {
			web.WriteProblem(w, r, web.Validation(v.errs))
			return
		}
		p, err := a.store.Update(r.Context(), key(id), func(p *Package, found bool) (bool, error) {
			if !found {
				return false, nil
			}
			before := *p
			if b.Size != nil {
				p.Size = size
			}
			set(&p.Weight, b.Weight)
			set(&p.Tag, b.Tag)
			if p.sameAs(before) {
				return false, nil
			}
			p.UpdatedAt = a.now().UTC()
			return true, nil
		})
		switch {
		case err != nil:
			a.storeFailed(w, r, err)
		case p.ID == "":
			web.WriteProblem(w, r, web.NotFound("no package "+id))
		default:
			web.WriteJSON(w, http.StatusOK, p)
		}
	})
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// handleDelete removes the package; an absent one is already gone. With
// ?deliveryId=X it removes the package only while it belongs to X: the
// scheduler undoing delivery X must not take away a package that another
// delivery has since been booked with. Either way the answer is 204, since
// in both cases delivery X no longer holds the package.
func (a *api) handleDelete() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["id"]
		q := r.URL.Query()
		if !q.Has("deliveryId") {
			if err := a.store.Delete(r.Context(), key(id), ""); err != nil {
				a.storeFailed(w, r, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		owner := q.Get("deliveryId")
		// An empty value is most likely an unset variable in the caller;
		// taking it as "no condition" would delete what it meant to protect.
		if owner == "" {
			web.WriteProblem(w, r, web.Validation([]web.FieldError{{Field: "deliveryId", Error: "must not be empty when given"}}))
			return
		}
		for range maxAttempts {
			p, etag, found, err := a.store.Get(r.Context(), key(id))
			if err != nil {
				a.storeFailed(w, r, err)
				return
			}
			if !found || p.DeliveryID != owner {
				if found {
					a.log.InfoContext(r.Context(), "package left alone: it belongs to another delivery",
						"package", id, "owner", p.DeliveryID, "requested_by", owner)
				}
				w.WriteHeader(http.StatusNoContent)
				return
			}
			// The ETag makes the delete lose to a concurrent re-creation
			// for another delivery; the loop then reads who owns it now.
			err = a.store.Delete(r.Context(), key(id), etag)
			if err == nil {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			if !errors.Is(err, sidecar.ErrConflict) {
				a.storeFailed(w, r, err)
				return
			}
		}
		a.storeFailed(w, r, errors.New("package kept changing during delete"))
	})
}

func (a *api) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	a.log.WarnContext(r.Context(), "state store call failed", "err", err)
	web.WriteProblem(w, r, web.Unavailable("the package store is unavailable", 1))
}
