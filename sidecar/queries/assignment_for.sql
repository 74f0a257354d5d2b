SELECT erp_sync.assignment_for(floor($1::float8)::int)::text
