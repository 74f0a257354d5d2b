-- Baseline (c) of the write-path benchmark: what a user would write by hand without erp_sync —
-- a PL/pgSQL trigger that regex-checks admission, stores to_jsonb(NEW) in an outbox and NOTIFYs.
CREATE TABLE mp.plain_outbox (
  id         bigserial PRIMARY KEY,
  contact_id bigint NOT NULL,
  kind       text NOT NULL,
  payload    jsonb NOT NULL,
  status     text NOT NULL DEFAULT 'pending',
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION mp.plain_capture() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ph text := regexp_replace(coalesce(NEW.phone, ''), '[[:space:]().-]', '', 'g');
BEGIN
  ph := regexp_replace(ph, '^(\+86|0086)', '');
  IF ph ~ '^1[3-9][0-9]{9}$'
     AND char_length(coalesce(NEW.name, '')) > 2
     AND coalesce(NEW.phone_verified, false)
     AND coalesce(NEW.score, 0) >= 60
     AND coalesce(NEW.list_status, 'white') = 'white'
     AND (NEW.type IS DISTINCT FROM 'company' OR coalesce(NEW.company, '') <> '') THEN
    INSERT INTO mp.plain_outbox (contact_id, kind, payload) VALUES (NEW.id, 'customer', to_jsonb(NEW));
    PERFORM pg_notify('plain_sync', '');
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER plain_capture AFTER INSERT OR UPDATE ON mp.contacts
  FOR EACH ROW EXECUTE FUNCTION mp.plain_capture();
