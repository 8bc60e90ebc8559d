-- Builds and queries a database: 200,000 rows, two indexes, a join,
-- grouping and sorting. The output is deterministic.
PRAGMA journal_mode = OFF;
CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, city INTEGER, score REAL);
CREATE TABLE cities (id INTEGER PRIMARY KEY, name TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
INSERT INTO cities SELECT i, 'city-' || hex(i * 7919) FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
INSERT INTO people SELECT i, 'person-' || hex((i * 2654435761) % 4294967296), (i * 31) % 500 + 1,
                          ((i * 48271) % 2147483647) / 2147483647.0 FROM n;
CREATE INDEX people_name ON people(name);
CREATE INDEX people_city ON people(city, score);
SELECT count(*), sum(length(name)), round(sum(score), 6) FROM people;
SELECT c.name, count(*), round(avg(p.score), 6), max(p.name)
  FROM people p JOIN cities c ON c.id = p.city GROUP BY c.name ORDER BY count(*) DESC, c.name LIMIT 20;
SELECT name FROM people WHERE name LIKE 'person-A%' ORDER BY name LIMIT 10;
SELECT group_concat(id, ',') FROM (SELECT id FROM people ORDER BY score DESC, id LIMIT 50);
UPDATE people SET score = score * 2 WHERE city % 3 = 0;
DELETE FROM people WHERE id % 5 = 0;
VACUUM;
SELECT count(*), round(sum(score), 6) FROM people;
SELECT city, count(*) FROM people GROUP BY city HAVING count(*) > 300 ORDER BY city LIMIT 10;
