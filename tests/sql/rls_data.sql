INSERT INTO secrets SELECT i, (ARRAY['acme', 'globex', 'initech'])[1 + i % 3], 'secret #' || i
FROM generate_series(1, 300) i;
INSERT INTO profiles VALUES ('acme', 'Acme Corp'), ('globex', 'Globex'), ('initech', 'Initech');
