-- Alert rules, their evaluation state per entity, and the transitions they caused.

CREATE TABLE alert_rules (
    tenant      text COLLATE "C" NOT NULL,
    id          text COLLATE "C" NOT NULL,
    -- The rule as alerts/rules.py validates it (its JSON form).
    rule        jsonb       NOT NULL,
    enabled     boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    modified_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, id)
);

-- Where each rule stands for each entity (normal, pending, firing, and what its window
-- needs), written with the alerts of the batch that changed it: a restarted worker goes on
-- exactly where the last committed batch left it.
CREATE TABLE alert_states (
    tenant     text COLLATE "C" NOT NULL,
    rule_id    text COLLATE "C" NOT NULL,
    entity_id  text COLLATE "C" NOT NULL,
    state      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, rule_id, entity_id),
    FOREIGN KEY (tenant, rule_id) REFERENCES alert_rules (tenant, id) ON DELETE CASCADE
);

-- Every raised, updated and resolved transition, in order.
CREATE TABLE alert_events (
    id          bigserial   PRIMARY KEY,
    tenant      text COLLATE "C" NOT NULL,
    rule_id     text COLLATE "C" NOT NULL,
    entity_id   text COLLATE "C" NOT NULL,
    alert_id    text COLLATE "C" NOT NULL,
    change      text        NOT NULL CHECK (change IN ('raised', 'updated', 'resolved')),
    at          timestamptz NOT NULL,
    value       double precision,
    detail      text        NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_events_rule_idx ON alert_events (tenant, rule_id, id);
