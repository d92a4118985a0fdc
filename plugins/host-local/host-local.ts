import { type CniPlugin, CtnetError, ErrorCode } from '../../core/index.js';
import { hostLocalSchema } from './schema.js';

const notYet = async (): Promise<never> => {
  throw new CtnetError(ErrorCode.internal, 'the host-local plugin is not implemented yet');
};

export const hostLocalPlugin: CniPlugin = {
  name: 'host-local',
  schema: hostLocalSchema,
  add: notYet,
  del: notYet,
};
