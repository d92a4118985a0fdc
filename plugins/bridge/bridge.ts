import { type CniPlugin, CtnetError, ErrorCode } from '../../core/index.js';
import { bridgeSchema } from './schema.js';

const notYet = async (): Promise<never> => {
  throw new CtnetError(ErrorCode.internal, 'the bridge plugin is not implemented yet');
};

export const bridgePlugin: CniPlugin = {
  name: 'bridge',
  schema: bridgeSchema,
  add: notYet,
  del: notYet,
};
