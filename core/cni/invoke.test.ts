import test from 'ava';
import { errorFromResponse } from './invoke.js';

test("a plugin's error JSON keeps its code, message, details and the hint skel put into details", (t) => {
  const response = (body: unknown) => ({ exitCode: 1, stdout: JSON.stringify(body) });
  const withHint = errorFromResponse(
    'portmap',
    response({ code: 7, msg: 'failed to publish', details: 'port 80; hint: use 8080' }),
  );
  t.is(withHint.code, 7);
  t.is(withHint.message, 'failed to publish');
  t.is(withHint.details, 'port 80');
  t.is(withHint.hint, 'use 8080');
  const onlyHint = errorFromResponse('portmap', response({ code: 7, msg: 'm', details: 'hint: use 8080' }));
  t.is(onlyHint.details, undefined);
  t.is(onlyHint.hint, 'use 8080');
  const plain = errorFromResponse('bridge', response({ code: 11, msg: 'm', details: 'no hint here' }));
  t.is(plain.details, 'no hint here');
  t.is(plain.hint, undefined);
});
