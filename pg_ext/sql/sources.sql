-- erp_sync payload views and change sources (since 0.2.0).
--
-- Payload views: what is sent may come from a view the operator writes in the spec's field names
-- (any joins, CASE value maps, casts) instead of one table through a column map:
--     SELECT erp_sync.track('hub.contact_source', 'contact');
-- A view is tracked like a table (erp_sync.tracked_tables), without capture triggers: the tables
-- behind it are change sources (below). erp_sync.check_source() validates it first.
--
-- Change sources: any table whose change should resync a contact, with the way from its row to
-- the contact key, e.g. a scoring row -> its thread -> the thread's contact:
--     SELECT erp_sync.track_source('hub.signals',
--         '{"via": [{"table": "hub.threads", "from": "thread_id", "to": "id"}], "key": "contact_id"}');
-- A change re-evaluates the contact's admission on the payload view (customer row queued, or the
-- rejection recorded) and queues its assignment; with "followup" each new row is a follow-up.
CREATE TABLE erp_sync.change_sources (
    relid      regclass PRIMARY KEY,
    path       jsonb NOT NULL CHECK (jsonb_typeof(path) = 'object' AND path ? 'key'),
    tracked_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE erp_sync.change_sources IS 'tables whose changes resync a contact, with the path to its key (erp_sync.track_source)';
SELECT pg_catalog.pg_extension_config_dump('erp_sync.change_sources', '');
GRANT SELECT ON erp_sync.change_sources TO erp_sync_worker, erp_sync_reader;

-- What is wrong with `rel` as the source of `entity` ('contact', 'thread', 'signal'): one row per
-- problem, severity 'error' (track() refuses the source) or 'warning' (it works, but perhaps not
-- as meant). Checked: the key columns exist and have a key type (integer, uuid or text); the
-- typed fields have a type the rules read (phone_verified boolean, score a number or text,
-- type text or an integer 1/2 mapped in the view); columns that are no spec field (ignored);
-- one row per id (a view joining a second row per contact would send one of them at random).
CREATE FUNCTION erp_sync.check_source(entity text, rel regclass)
RETURNS TABLE (severity text, field text, problem text, hint text)
    LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fields text[] := CASE entity
        WHEN 'contact' THEN ARRAY['id', 'type', 'name', 'company', 'phone', 'phone_verified', 'score',
                                  'list_status', 'wechat_id', 'address', 'contact_person',
                                  'contact_phone', 'email', 'notes']
        WHEN 'thread' THEN ARRAY['id', 'contact_id', 'score', 'summary']
        WHEN 'signal' THEN ARRAY['id', 'contact_id', 'content', 'ts'] END;
    keys text[] := CASE entity WHEN 'contact' THEN ARRAY['id'] ELSE ARRAY['id', 'contact_id'] END;
    col record;
    dup text;
BEGIN
    IF fields IS NULL THEN
        RETURN QUERY SELECT 'error', NULL::text, format('unknown entity %L', entity),
                            'a source is for contact, thread or signal';
        RETURN;
    END IF;
    FOR col IN
        SELECT k.name, a.attname IS NOT NULL AS present,
               format_type(a.atttypid, a.atttypmod) AS type_name,
               coalesce(nullif(t.typbasetype, 0), t.oid) AS base
        FROM unnest(fields) AS k(name)
        LEFT JOIN pg_attribute a ON a.attrelid = rel AND a.attname = k.name
                                AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_type t ON t.oid = a.atttypid
    LOOP
        IF NOT col.present THEN
            IF col.name = ANY (keys) THEN
                RETURN QUERY SELECT 'error', col.name, format('%s has no column %I', rel, col.name),
                    format('a %s source needs the column %I (%s)', entity, col.name,
                           CASE WHEN col.name = 'id' AND entity = 'contact' THEN 'the contact key'
                                WHEN col.name = 'id' THEN 'the row''s own id'
                                ELSE 'the contact key of the row' END);
            END IF;
            CONTINUE;
        END IF;
        IF col.name = ANY (keys) AND NOT (entity <> 'contact' AND col.name = 'id') AND col.base NOT IN
               ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype,
                'uuid'::regtype, 'text'::regtype, 'varchar'::regtype, 'bpchar'::regtype) THEN
            RETURN QUERY SELECT 'error', col.name, format('%s.%I is of type %s', rel, col.name, col.type_name),
                'a contact key is an integer, uuid or text column';
        ELSIF entity <> 'contact' AND col.name = 'id' AND col.base NOT IN
               ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) THEN
            RETURN QUERY SELECT CASE WHEN entity = 'signal' THEN 'error' ELSE 'warning' END, col.name,
                format('%s.%I is of type %s', rel, col.name, col.type_name),
                CASE WHEN entity = 'signal'
                     THEN 'a signal id is an integer (a follow-up refers to it): cast it, or number the rows in the view'
                     ELSE 'the newest thread of a contact is the one with the highest id; an integer id makes that meaningful' END;
        ELSIF col.name = 'phone_verified' AND col.base <> 'bool'::regtype THEN
            RETURN QUERY SELECT 'error', col.name, format('%s.phone_verified is of type %s', rel, col.type_name),
                'phone_verified is a boolean: map it in the view, e.g. (verified = 1) AS phone_verified';
        ELSIF col.name = 'score' AND col.base NOT IN
               ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype,
                'float4'::regtype, 'float8'::regtype, 'text'::regtype, 'varchar'::regtype) THEN
            RETURN QUERY SELECT 'error', col.name, format('%s.score is of type %s', rel, col.type_name),
                'score is a number (0-100)';
        ELSIF col.name = 'type' AND col.base NOT IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype) THEN
            RETURN QUERY SELECT 'error', col.name, format('%s.type is of type %s', rel, col.type_name),
                'type is ''company'' or ''personal'': map it in the view, e.g. CASE customer_type WHEN 1 THEN ''company'' WHEN 2 THEN ''personal'' END AS type';
        END IF;
    END LOOP;
    RETURN QUERY
        SELECT 'warning', a.attname::text, format('%s.%I is no %s field and is not sent', rel, a.attname, entity),
               format('the %s fields: %s', entity, array_to_string(fields, ', '))
        FROM pg_attribute a
        WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> ALL (fields)
        ORDER BY a.attnum;
    -- a table's key is its own (track() checked the column map); a view's may repeat
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = rel) IN ('v', 'm') AND EXISTS (
           SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = 'id'
                                          AND a.attnum > 0 AND NOT a.attisdropped) THEN
        EXECUTE format('SELECT string_agg(id, '', '') FROM (SELECT (id)::text AS id FROM %s '
                       'GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 5) d', rel) INTO dup;
        IF dup IS NOT NULL THEN
            RETURN QUERY SELECT 'error', 'id', format('%s has more than one row for id %s', rel, dup),
                'a source has one row per id: join the newest row only (DISTINCT ON, or a LATERAL ... LIMIT 1)';
        END IF;
    END IF;
END
$$;

-- check_source() of every tracked payload view: what the operator runs after editing one. (A
-- tracked table is read through its column map, which track() validated.)
CREATE FUNCTION erp_sync.check_sources()
RETURNS TABLE (entity text, source text, severity text, field text, problem text, hint text)
    LANGUAGE sql STABLE PARALLEL RESTRICTED
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.entity, t.relid::text, c.severity, c.field, c.problem, c.hint
    FROM erp_sync.tracked_tables t
    JOIN pg_class k ON k.oid = t.relid AND k.relkind IN ('v', 'm'),
    LATERAL erp_sync.check_source(t.entity, t.relid) c
    ORDER BY t.entity, c.severity, c.field
$$;
