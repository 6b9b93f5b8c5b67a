package notifications

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"golang.org/x/text/currency"

	"github.com/eventflow/eventflow/event"
)

//go:embed templates/*.tmpl
var templateFiles embed.FS

// Renderer turns a delivery into an email or a webhook call.
//
// Emails come from templates: templates/email.{txt,html}.tmpl lay out every
// email, and templates/orders.tmpl defines, per event type, its subject
// ("subject:<type>") and its opening line ("headline:<type>"). The HTML is
// rendered by html/template, so order data is escaped.
type Renderer struct {
	from      string
	publicURL string
	domain    string
	tokens    *Tokens
	text      *texttemplate.Template
	html      *htmltemplate.Template

	// Every subscriber of an event gets the same email but for the
	// unsubscribe token, so the bodies are rendered once per event, with
	// placeholder where the token goes, and kept in bodies by event id.
	// The placeholder is random, so no order data can spell it, and like a
	// token it is base64url, which every template context writes as is.
	placeholder string
	mu          sync.Mutex
	bodies      map[string]renderedEvent
}

// renderedEvent is the part of an email that is the same for every
// subscriber of one event.
type renderedEvent struct {
	subject, text, html string
}

// maxRenderedEvents bounds the bodies kept; deliveries of one event are
// created, and so claimed and sent, together, so a small cache serves.
const maxRenderedEvents = 1024

// NewRenderer parses the templates. from is the sender address; publicURL
// is where unsubscribe links point.
func NewRenderer(from, publicURL string, tokens *Tokens) (*Renderer, error) {
	text, err := texttemplate.ParseFS(templateFiles, "templates/email.txt.tmpl", "templates/orders.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse text templates: %w", err)
	}
	html, err := htmltemplate.ParseFS(templateFiles, "templates/email.html.tmpl", "templates/orders.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse html templates: %w", err)
	}
	domain := "eventflow.local"
	if at := strings.LastIndex(from, "@"); at >= 0 {
		domain = strings.Trim(from[at+1:], "> ")
	}
	random := make([]byte, 24)
	rand.Read(random)
	return &Renderer{from: from, publicURL: publicURL, domain: domain, tokens: tokens, text: text, html: html,
		placeholder: base64.RawURLEncoding.EncodeToString(random), bodies: map[string]renderedEvent{}}, nil
}

// orderView is what the templates see of an order event.
type orderView struct {
	EventType      string
	EventTime      time.Time
	OrderID        string
	Status         string
	PreviousStatus string
	Total          string
	Items          []itemView
	Comment        string
	UnsubscribeURL string
	Subject        string
	Headline       string
}

type itemView struct {
	Name      string
	Quantity  int64
	LineTotal string
}

// Email renders the email of a job.
func (r *Renderer) Email(j Job) (Email, error) {
	token := r.tokens.Token(j.Subscription.ID)
	unsubscribe := r.publicURL + "/unsubscribe/" + token
	body, err := r.eventBody(j.Event)
	if err != nil {
		return Email{}, err
	}
	return Email{
		From:      r.from,
		To:        j.Delivery.Address,
		Subject:   strings.ReplaceAll(body.subject, r.placeholder, token),
		Text:      strings.ReplaceAll(body.text, r.placeholder, token),
		HTML:      strings.ReplaceAll(body.html, r.placeholder, token),
		MessageID: j.Delivery.ID + "@" + r.domain,
		Headers: map[string]string{
			"List-Unsubscribe":        "<" + unsubscribe + ">",
			"List-Unsubscribe-Post":   "List-Unsubscribe=One-Click",
			"X-Eventflow-Event-Id":    j.Event.ID,
			"X-Eventflow-Event-Type":  j.Event.Type,
			"X-Eventflow-Delivery-Id": j.Delivery.ID,
		},
	}, nil
}

// eventBody returns the subject and bodies of e's emails, with the
// placeholder for the unsubscribe token, from the cache when it has them.
// Event ids are unique and an event never changes, so the id is the key.
func (r *Renderer) eventBody(e event.Event) (renderedEvent, error) {
	r.mu.Lock()
	body, ok := r.bodies[e.ID]
	r.mu.Unlock()
	if ok {
		return body, nil
	}
	body, err := r.render(e, r.placeholder)
	if err != nil {
		return renderedEvent{}, err
	}
	r.mu.Lock()
	if len(r.bodies) >= maxRenderedEvents {
		clear(r.bodies)
	}
	r.bodies[e.ID] = body
	r.mu.Unlock()
	return body, nil
}

// render renders e's subject and bodies for a subscriber whose unsubscribe
// token is token (the placeholder, for the cache).
func (r *Renderer) render(e event.Event, token string) (renderedEvent, error) {
	var data struct {
		ID             string `json:"id"`
		Status         string `json:"status"`
		PreviousStatus string `json:"previous_status"`
		Currency       string `json:"currency"`
		Total          int64  `json:"total"`
		Comment        string `json:"comment"`
		Items          []struct {
			Name      string `json:"name"`
			Quantity  int64  `json:"quantity"`
			UnitPrice int64  `json:"unit_price"`
		} `json:"items"`
	}
	if err := json.Unmarshal(e.Data, &data); err != nil {
		return renderedEvent{}, fmt.Errorf("event data: %w", err)
	}
	v := orderView{
		EventType:      e.Type,
		EventTime:      e.Time,
		OrderID:        data.ID,
		Status:         data.Status,
		PreviousStatus: data.PreviousStatus,
		Total:          formatMoney(data.Total, data.Currency),
		Comment:        data.Comment,
		UnsubscribeURL: r.publicURL + "/unsubscribe/" + token,
	}
	for _, it := range data.Items {
		v.Items = append(v.Items, itemView{Name: it.Name, Quantity: it.Quantity, LineTotal: formatMoney(it.Quantity*it.UnitPrice, data.Currency)})
	}
	var err error
	if v.Subject, err = r.define("subject", v); err != nil {
		return renderedEvent{}, err
	}
	if v.Headline, err = r.define("headline", v); err != nil {
		return renderedEvent{}, err
	}
	var text, html bytes.Buffer
	if err := r.text.ExecuteTemplate(&text, "email.txt.tmpl", v); err != nil {
		return renderedEvent{}, fmt.Errorf("render text: %w", err)
	}
	if err := r.html.ExecuteTemplate(&html, "email.html.tmpl", v); err != nil {
		return renderedEvent{}, fmt.Errorf("render html: %w", err)
	}
	return renderedEvent{subject: v.Subject, text: text.String(), html: html.String()}, nil
}

// define renders the per-type template "<kind>:<event type>", or
// "<kind>:default" for a type without one. Subjects and headlines are one
// line of plain text.
func (r *Renderer) define(kind string, v orderView) (string, error) {
	name := kind + ":" + v.EventType
	if r.text.Lookup(name) == nil {
		name = kind + ":default"
	}
	var b bytes.Buffer
	if err := r.text.ExecuteTemplate(&b, name, v); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return strings.Join(strings.Fields(b.String()), " "), nil
}

// WebhookCall renders the webhook call of a job: the CloudEvent in
// structured JSON mode, the same on every retry but for the timestamp.
func (r *Renderer) WebhookCall(j Job, now time.Time) (WebhookCall, error) {
	body, err := json.Marshal(structuredEvent(j.Event))
	if err != nil {
		return WebhookCall{}, fmt.Errorf("encode event: %w", err)
	}
	return WebhookCall{URL: j.Delivery.Address, ID: j.Delivery.ID, Timestamp: now, Body: body, Secret: j.Subscription.WebhookSecret}, nil
}

// structuredEvent is a CloudEvent in JSON format (application/cloudevents+json).
func structuredEvent(e event.Event) map[string]any {
	m := map[string]any{
		"specversion":     event.SpecVersion,
		"id":              e.ID,
		"source":          e.Source,
		"type":            e.Type,
		"subject":         e.Subject,
		"time":            e.Time.UTC().Format(time.RFC3339Nano),
		"dataschema":      e.DataSchema,
		"datacontenttype": event.DataContentType,
		"sequence":        strconv.FormatInt(e.Sequence, 10),
		"data":            json.RawMessage(e.Data),
	}
	if e.TraceParent != "" {
		m["traceparent"] = e.TraceParent
	}
	return m
}

// formatMoney writes minor units in the currency's own decimals: 2100 EUR
// is "21.00 EUR", 1500 JPY is "1500 JPY".
func formatMoney(minor int64, code string) string {
	scale := 2
	if unit, err := currency.ParseISO(code); err == nil {
		scale, _ = currency.Standard.Rounding(unit)
	}
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	s := strconv.FormatInt(minor, 10)
	if scale == 0 {
		return sign + s + " " + code
	}
	for len(s) <= scale {
		s = "0" + s
	}
	return sign + s[:len(s)-scale] + "." + s[len(s)-scale:] + " " + code
}
