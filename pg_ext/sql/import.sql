-- erp_sync ERP -> platform: bring the ERP-only customers home (spec scenario 4).
--
-- erp_sync.import_erp_customers(max_customers, dry_run) inserts the pulled customers that the
-- platform does not know (erp_sync.erp_only_customers: listed by the last pull, not gone, no
-- customer_link by ord or khid, no contact whose khid it is) into the tracked contact table,
-- through its column map, with only what the ERP tells (name, company and type, mobile
-- normalised with erp_sync.normalize_mobile, weixin_acc, address, contact person, office phone,
-- email); the table's defaults fill the rest, its key included. Each new contact is linked to
-- its ERP customer in the same transaction: customer_link(contact_id, khid = the customer's OWN
-- khid, erp_ord, synced_at), so
--   * contact_status shows it synced with that erp_ord;
--   * its payload's khid is that khid (the khid rule: a linked contact's khid is its link's,
--     capture/lookup.rs), so its next platform edit updates that same customer;
--   * capture is suppressed for the inserts (erp_sync.suppress_capture(tbl, true), this backend,
--     this transaction): the ERP holds exactly that already, so nothing is queued, no echo.
-- Not imported, each with its erp_ord and reason in the summary: a customer without a usable
-- khid, one whose khid has the shape of the platform's khid format for a key no contact has yet
-- (a contact created later with that key would take it), one whose mobile a platform contact
-- (or a customer imported before it in this call) has already: one person is one contact. Each
-- customer is inserted in its own subtransaction: a NOT NULL column without a default, a CHECK
-- or a trigger of the platform that refuses it fails that customer only (its SQLSTATE and
-- message in the summary). dry_run: every insert is made and rolled back (so the summary shows
-- what the table would refuse), nothing is kept. max_customers: import at most this many (NULL:
-- all); the ones left are counted in "remaining". Owner only (EXECUTE revoked from PUBLIC); runs
-- with the caller's rights (INSERT on the contact table, customer_link; see SECURITY.md).
CREATE FUNCTION erp_sync.import_erp_customers(max_customers int DEFAULT NULL,
                                              dry_run boolean DEFAULT false)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dry constant boolean := coalesce(import_erp_customers.dry_run, false);
    lim constant int := import_erp_customers.max_customers;
    dry_marker constant text := 'erp_sync: dry run, rolled back';
    t record;
    key_col text;
    key_type text;
    phone_col text;
    fmt text;
    pre text;
    suf text;
    e record;
    k text;
    is_key boolean;
    key_exists boolean;
    kind text;
    person text;
    fields jsonb;
    vals jsonb;
    collist text;
    new_key text;
    owner text;
    taken jsonb;
    st text;
    msg text;
    n_candidates int := 0;
    n_imported int := 0;
    n_remaining int := 0;
    imported jsonb := '[]';
    skipped jsonb := '[]';
    failed jsonb := '[]';
BEGIN
    IF lim IS NOT NULL AND lim < 0 THEN
        RAISE EXCEPTION 'erp_sync: max_customers must not be negative (got %)', lim
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass NULL (the default) to import every ERP-only customer';
    END IF;
    SELECT tt.relid, tt.columns, format('%I.%I', n.nspname, c.relname) AS qual INTO t
    FROM erp_sync.tracked_tables tt
    JOIN pg_class c ON c.oid = tt.relid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE tt.entity = 'contact';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'erp_sync: no contact table is tracked, so there is nowhere to import the ERP customers to'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'track the platform''s contact table first: SELECT erp_sync.track(''schema.table'', ''contact'', ''{"phone": "mobile", ...}'')';
    END IF;
    key_col := t.columns->>'id';
    phone_col := t.columns->>'phone';
    SELECT format_type(a.atttypid, a.atttypmod) INTO key_type
    FROM pg_attribute a
    WHERE a.attrelid = t.relid AND a.attname = key_col AND NOT a.attisdropped;
    IF key_type IS NULL THEN
        RAISE EXCEPTION 'erp_sync: the key column "%" of % does not exist any more', key_col, t.qual
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'call erp_sync.track() again with the table''s current column map';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM erp_sync.erp_customers) THEN
        RAISE NOTICE 'erp_sync: no ERP customers have been pulled yet, nothing to import'
            USING HINT = 'run `erp-sync pull` (or wait for the scheduled pull), then call erp_sync.import_erp_customers() again';
        RETURN jsonb_build_object('dry_run', dry, 'contact_table', t.qual, 'pulled', false,
                                  'candidates', 0, 'imported', 0, 'skipped', 0, 'failed', 0,
                                  'remaining', 0, 'contacts', '[]'::jsonb,
                                  'skipped_customers', '[]'::jsonb, 'failures', '[]'::jsonb);
    END IF;
    -- one import at a time: two would both see the same customers as ERP-only
    PERFORM pg_advisory_xact_lock(hashtext('erp_sync.import_erp_customers'));

    -- the khid format's text around {key}, to recognise a khid that is (or would be) a contact's
    fmt := erp_sync.setting('customer.khid_format');
    IF strpos(fmt, '{key}') > 0 THEN
        pre := split_part(fmt, '{key}', 1);
        suf := substr(fmt, length(pre) + length('{key}') + 1);
    END IF;

    -- the platform's mobiles (comparison key: the normalised mobile, else the trimmed text) that
    -- some pulled customer has, and the contact holding each: one scan of the contact table
    taken := '{}';
    IF phone_col IS NOT NULL THEN
        EXECUTE format(
            'SELECT coalesce(jsonb_object_agg(m, k), ''{}'') FROM (
                 SELECT DISTINCT ON (m) m, k FROM (
                     SELECT coalesce(erp_sync.normalize_mobile((c.%1$I)::text),
                                     nullif(btrim((c.%1$I)::text), '''')) AS m,
                            (c.%2$I)::text AS k
                     FROM %3$s c) p
                 WHERE m IN (SELECT coalesce(erp_sync.normalize_mobile(x.mobile), nullif(btrim(x.mobile), ''''))
                             FROM erp_sync.erp_customers x WHERE x.gone_at IS NULL)
                 ORDER BY m, k) q',
            phone_col, key_col, t.qual)
        INTO taken;
    END IF;

    PERFORM erp_sync.suppress_capture(t.relid, true);
    FOR e IN
        SELECT x.erp_ord, x.name, x.khid, x.mobile, x.weixin_acc, x.address, x.raw,
               coalesce(erp_sync.normalize_mobile(x.mobile), nullif(btrim(x.mobile), '')) AS mobile_key
        FROM erp_sync.erp_customers x
        WHERE x.gone_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM erp_sync.customer_link l WHERE l.erp_ord = x.erp_ord)
          AND NOT EXISTS (SELECT 1 FROM erp_sync.customer_link l WHERE l.khid = x.khid)
        ORDER BY x.erp_ord
    LOOP
        -- a khid of the format's shape: the khid of the contact with that key, if the key column
        -- can hold it as written
        is_key := false;
        key_exists := false;
        IF pre IS NOT NULL AND e.khid IS NOT NULL
           AND length(e.khid) > length(pre) + length(suf)
           AND left(e.khid, length(pre)) = pre AND right(e.khid, length(suf)) = suf THEN
            k := substr(e.khid, length(pre) + 1, length(e.khid) - length(pre) - length(suf));
            BEGIN
                EXECUTE format('SELECT ($1::%1$s)::text = $1, EXISTS (SELECT 1 FROM %2$s c WHERE c.%3$I = $1::%1$s)',
                               key_type, t.qual, key_col)
                INTO is_key, key_exists USING k;
            EXCEPTION WHEN OTHERS THEN
                is_key := false; -- not a value of the key column: no contact can have that khid
                key_exists := false;
            END;
        END IF;
        IF key_exists THEN
            CONTINUE; -- not ERP-only: that contact's next sync updates this customer
        END IF;
        n_candidates := n_candidates + 1;
        IF lim IS NOT NULL AND n_imported >= lim THEN
            n_remaining := n_remaining + 1;
            CONTINUE;
        END IF;

        IF e.khid IS NULL OR e.khid = '' OR btrim(e.khid) <> e.khid OR length(e.khid) > 50 THEN
            skipped := skipped || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid,
                'reason', 'the ERP customer has no usable khid (客户编号): give it one in the ERP and pull again');
            CONTINUE;
        END IF;
        IF is_key THEN
            skipped := skipped || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid,
                'reason', format('khid %s is the khid customer.khid_format gives the key %s, which no contact has yet: '
                                 'a contact created with that key would take this ERP customer; give it another khid in the ERP and pull again',
                                 e.khid, k));
            CONTINUE;
        END IF;
        owner := CASE WHEN e.mobile_key IS NOT NULL THEN taken->>e.mobile_key END;
        IF owner IS NOT NULL THEN
            skipped := skipped || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid,
                'reason', format('mobile already on platform contact %s: not imported (one person, one contact); '
                                 'that contact''s sync reports the ERP customer holding its mobile', owner));
            CONTINUE;
        END IF;

        -- what the ERP tells, in the spec's field names (intsort 1 单位客户 / 2 个人客户)
        kind := CASE WHEN btrim(e.raw->>'intsort') IN ('1', '单位客户', '单位') THEN 'company'
                     WHEN btrim(e.raw->>'intsort') IN ('2', '个人客户', '个人') THEN 'personal' END;
        person := nullif(btrim(e.raw->>'person_name'), '');
        fields := jsonb_strip_nulls(jsonb_build_object(
            'type', kind,
            'name', CASE WHEN kind = 'company' THEN coalesce(person, nullif(btrim(e.name), ''))
                         ELSE nullif(btrim(e.name), '') END,
            'company', CASE WHEN kind = 'company' THEN nullif(btrim(e.name), '') END,
            'contact_person', CASE WHEN kind = 'company' THEN person END,
            'contact_phone', CASE WHEN kind = 'company' THEN nullif(btrim(e.raw->>'phone'), '') END,
            'phone', e.mobile_key,
            'wechat_id', nullif(btrim(e.weixin_acc), ''),
            'address', nullif(btrim(e.address), ''),
            'email', nullif(btrim(e.raw->>'email'), '')));
        -- through the column map: column -> value, for the mapped fields only
        SELECT jsonb_object_agg(t.columns->>f.key, f.value), string_agg(quote_ident(t.columns->>f.key), ', ')
        INTO vals, collist
        FROM jsonb_each(fields) f
        WHERE t.columns ? f.key AND f.key <> 'id';
        IF collist IS NULL THEN
            skipped := skipped || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid,
                'reason', 'nothing the ERP holds of it maps to a column of ' || t.qual);
            CONTINUE;
        END IF;

        BEGIN
            EXECUTE format('INSERT INTO %1$s (%2$s) SELECT %2$s FROM jsonb_populate_record(NULL::%1$s, $1) RETURNING (%3$I)::text',
                           t.qual, collist, key_col)
            INTO new_key USING vals;
            INSERT INTO erp_sync.customer_link (contact_id, khid, erp_ord, customer_type, person_synced, synced_at)
            VALUES (new_key, e.khid, e.erp_ord, kind, true, now());
            IF dry THEN
                RAISE EXCEPTION USING MESSAGE = dry_marker;
            END IF;
            imported := imported || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid, 'contact_id', new_key);
            n_imported := n_imported + 1;
            IF e.mobile_key IS NOT NULL THEN
                taken := taken || jsonb_build_object(e.mobile_key, new_key);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            IF dry AND msg = dry_marker THEN
                imported := imported || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid, 'contact_id', NULL);
                n_imported := n_imported + 1;
                IF e.mobile_key IS NOT NULL THEN
                    taken := taken || jsonb_build_object(e.mobile_key, '(this dry run)');
                END IF;
            ELSE
                failed := failed || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid,
                    'sqlstate', st, 'message', erp_sync.mask_text(msg));
            END IF;
        END;
    END LOOP;
    PERFORM erp_sync.suppress_capture(t.relid, false);

    RAISE NOTICE 'erp_sync: % % of % ERP-only customers into % (% skipped, % failed, % left by max_customers)',
        CASE WHEN dry THEN 'dry run: would import' ELSE 'imported' END, n_imported, n_candidates, t.qual,
        jsonb_array_length(skipped), jsonb_array_length(failed), n_remaining;
    RETURN jsonb_build_object('dry_run', dry, 'contact_table', t.qual, 'pulled', true,
                              'candidates', n_candidates, 'imported', n_imported,
                              'skipped', jsonb_array_length(skipped), 'failed', jsonb_array_length(failed),
                              'remaining', n_remaining, 'contacts', imported,
                              'skipped_customers', skipped, 'failures', failed);
END
$$;

-- ---- privileges ----
-- Operators (the extension owner, or roles it grants) run the import; suppress_capture is its
-- tool (a role that may call it writes contacts without capture in its transaction).
REVOKE EXECUTE ON FUNCTION erp_sync.import_erp_customers(int, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.suppress_capture(regclass, boolean) FROM PUBLIC;
