import { createMatcher, PatternError } from '@httpmesh/url-matcher';

const matcher = createMatcher([
  { pattern: '/users/:id', data: 'users' },
  { pattern: '/users/me', methods: ['GET'], data: 'profile' },
  { pattern: '/files/*path', data: 'storage' },
  { pattern: '/docs{/:lang}/intro', data: 'docs' },
  { pattern: '/status', host: '*.example.com', data: 'status' },
]);

const show = (found) =>
  console.log(found ? `${found.pattern} ${JSON.stringify(found.params)} ${found.data}` : 'no match');
show(matcher.match('/users/42?expand=true', 'GET'));
show(matcher.match('/users/me', 'GET'));
show(matcher.match('/users/me', 'DELETE'));
show(matcher.match('/files/reports/2026/q3%20final.pdf'));
show(matcher.match('/docs/intro'));
show(matcher.match('/docs/fr/intro'));
show(matcher.match('/status', 'GET', 'eu.example.com:8443'));
show(matcher.match('/status', 'GET', 'example.org'));

try {
  createMatcher([{ pattern: '/users/:id' }, { pattern: '/users/:name' }]);
} catch (error) {
  if (error instanceof PatternError) console.log(`${error.code} ${error.conflictsWith}`);
}
try {
  createMatcher([{ pattern: '/users/:id(\\d+)' }]);
} catch (error) {
  if (error instanceof PatternError) console.log(`${error.code} at ${error.position}`);
}
