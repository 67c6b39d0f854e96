-- Rows for the fidelity test: three tenants; 'acme' holds the nasty values.
SET TIME ZONE 'UTC';

-- Row 1: strings and numbers at their edges.
INSERT INTO everything (tenant_id, label, t_text, t_varchar, t_char, t_bool, t_int2, t_int8,
    t_numeric, t_num_scale, t_float4, t_float8)
VALUES ('acme', 'edges-1',
    E'tab\there\nnewline\r\ncrlf back\\slash ''single'' "double" \\N \\. end',
    '', 'ab', true, -32768, -9223372036854775808,
    'NaN', 12345678901234567890.0123456789, 'Infinity', 'NaN');

INSERT INTO everything (tenant_id, label, t_text, t_varchar, t_char, t_bool, t_int2, t_int8,
    t_numeric, t_num_scale, t_float4, t_float8)
VALUES ('acme', 'edges-2', '', NULL, '     ', false, 32767, 9223372036854775807,
    1e300::numeric * 7 + 0.000000000000000000000000000001, -0.0000000001, '-Infinity', 'Infinity'),
       ('acme', 'edges-3', NULL, 'x', NULL, NULL, 0, 0,
    '-123456789012345678901234567890.123456789012345678901234567890', 0, 'NaN', '-Infinity'),
       ('acme', 'edges-4', E'\\x00 not bytea; unicode: ünïcødé 租户 😀 \u0001', 'NULL', 'null', NULL, NULL, NULL,
    0.1, 1, 1.17549435e-38, 2.2250738585072014e-308),
       ('acme', 'edges-5', 'neg zero floats', NULL, NULL, NULL, NULL, NULL,
    -0.0, NULL, '-0', '-0'),
       ('acme', 'edges-6', 'max floats', NULL, NULL, NULL, NULL, NULL,
    1e-300::numeric, NULL, 3.4028235e38, 1.7976931348623157e308);

-- Dates and times.
INSERT INTO everything (tenant_id, label, t_date, t_ts, t_tstz, t_time, t_timetz, t_interval)
VALUES ('acme', 'time-1', 'infinity', 'infinity', 'infinity', '24:00:00', '23:59:59.999999+14', '178000000 years'),
       ('acme', 'time-2', '-infinity', '-infinity', '-infinity', '00:00:00', '00:00:00-15:59', '-178000000 years'),
       ('acme', 'time-3', '4713-01-01 BC', '0044-03-15 12:00:00 BC', '0001-01-01 00:00:00+00 BC', '12:34:56.789012', '04:05:06.5-08:00',
        '1 year 2 mons 3 days 04:05:06.789 ago'),
       ('acme', 'time-4', '5874897-12-31', '294276-12-31 23:59:59.999999', '2024-03-10 02:30:00 America/New_York',
        '00:00:00.000001', '12:00:00+05:45', '-1 days +25:00:00'),
       ('acme', 'time-5', '2000-02-29', '1999-12-31 23:59:60', '2016-12-31 23:59:59.5+13:45', NULL, NULL, '0 seconds');

-- JSON, uuid, bytea, arrays, ranges.
INSERT INTO everything (tenant_id, label, t_uuid, t_json, t_jsonb, t_bytea, t_int_arr, t_int_2d, t_text_arr,
    t_int4range, t_tstzrange, t_numrange)
VALUES ('acme', 'doc-1', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        E'{"a": 1,   "a" : 2,\n\t"b":[1 , 2.50, 1e3] , "c":"\\u00e9\\n"  }',
        '{"z": {"deep": [null, true, 1.000, "x\"y"]}, "a": 1, "a": 3}',
        E'\\x00010200ff00fe5c27220a0d09'::bytea,
        ARRAY[1, NULL, 3], '{{1,2,3},{4,NULL,6}}', ARRAY['a,b', 'quote"d', 'back\slash', '{brace}', NULL, 'NULL', '', ' sp '],
        'empty', '["2020-01-01 00:00+00","infinity")', '(-1.5,NaN]'),
       ('acme', 'doc-2', '00000000-0000-0000-0000-000000000000', 'null', 'null', ''::bytea,
        '{}', '{{{1},{2}},{{3},{4}}}', '{}', '[1,10)', 'empty', '(,)'),
       ('acme', 'doc-3', NULL, '"just a string"', '[]', NULL, NULL, '[0:1][5:6]={{1,2},{3,4}}', '{"{\"nested\"}"}',
        '(,5]', '(,)', 'empty');

-- Network, bits, enum, domain, composite, xml, money, geometry, tsvector.
INSERT INTO everything (tenant_id, label, t_inet, t_cidr, t_macaddr, t_macaddr8, t_bit, t_varbit, t_enum, t_domain,
    t_composite, t_xml, t_money, t_point, t_line, t_lseg, t_box, t_path, t_polygon, t_circle, t_tsvector, t_oid)
VALUES ('acme', 'misc-1', '192.168.100.128/25', '10.1.0.0/16', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
        B'10100101', B'', 'it''s "complicated"', 'ABCDE',
        ROW(E'Main "St", 1\\2', 42, ARRAY['x', NULL, 'y,z'])::addr,
        '<?xml version="1.0"?><doc a="1">text &amp; <b>bold</b><!-- c --></doc>', '-92233720368547758.08',
        '(1.5,-2.25)', '{1,-1,0}', '[(0,0),(1e10,1e-10)]', '((1,1),(0,0))', '[(0,0),(1,1),(2,0)]',
        '((0,0),(1,0),(1,1),(0,1))', '<(0,0),1e-3>', 'the:1A quick:2B brown fox''s & ''jumps'':3', 4294967295),
       ('acme', 'misc-2', '::ffff:1.2.3.4', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00:00:00',
        B'00000000', B'1111111111111111111111111111111111111111111111111111111111111111', 'sad', 'XY',
        ROW(NULL, NULL, NULL)::addr, 'just text, no root', '0', '(NaN,Infinity)', '{0,1,-5}', '[(1,2),(1,2)]',
        '((-Infinity,0),(Infinity,1))', '((0,0),(1,1))', '((0,0))', '<(1,2),0>', '', 0),
       ('acme', 'misc-3', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, NULL, NULL);

-- Big values: ~5 MB text, ~3 MB bytea (incompressible-ish).
INSERT INTO everything (tenant_id, label, t_text, t_bytea)
SELECT 'acme', 'big', string_agg(md5(i::text), '' ORDER BY i),
       (SELECT decode(string_agg(md5((i2 * 7)::text), '' ORDER BY i2), 'hex') FROM generate_series(1, 196608) i2)
FROM generate_series(1, 163840) i;

-- Other tenants: some overlapping values, one row identical to an acme row except for the tenant.
INSERT INTO everything (tenant_id, label, t_text, t_numeric, t_float8, t_jsonb, t_int_arr, t_tstz)
VALUES ('globex', 'g-1', E'globex\ttext', 42, 'NaN', '{"g": 1}', '{1,2}', 'infinity'),
       ('globex', 'edges-3', NULL, NULL, NULL, NULL, NULL, NULL),
       ('initech', 'i-1', '', 0, 0, '[]', '{}', '2000-01-01 00:00:00+00');
INSERT INTO everything (tenant_id, label, t_text)
SELECT 'initech', 'bulk-' || i, repeat(md5(i::text), 3) FROM generate_series(1, 2000) i;
