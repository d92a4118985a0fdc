import { type CniPlugin, CtnetError, ErrorCode } from '../../core/index.js';
import { loopbackSchema } from './schema.js';

const notYet = async (): Promise<never> => {
  throw new CtnetError(ErrorCode.internal, 'the loopback plugin is not implemented yet');
};

export const loopbackPlugin: CniPlugin = {
  name: 'loopback',
  schema: loopbackSchema,
  add: notYet,
  del: notYet,
};
